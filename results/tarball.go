package results

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// serveTarball streams a run directory (or any directory below the root) as a .tar.gz.
func (s *Server) serveTarball(w http.ResponseWriter, r *http.Request, rel string) {
	real, ok := s.resolve(rel)
	if !ok || real == s.root {
		http.NotFound(w, r)
		return
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		http.NotFound(w, r)
		return
	}
	name := safeFileName(strings.ReplaceAll(strings.Trim(rel, "/"), "/", "-"))
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+tarSuffix+`"`)
	if r.Method == http.MethodHead {
		return
	}
	// Once the first byte is sent the status is 200 whatever happens: an error ends
	// the stream early, and the archive is then truncated, which gzip readers report.
	_ = WriteTarball(w, real, path.Base(rel))
}

// safeFileName keeps a download's name to letters, digits and ._-.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r) {
			return r
		}
		return '_'
	}, s)
}

// WriteTarball writes dir as a gzipped tar to w, its entries under prefix/. Only
// directories and regular files are taken: a symbolic link is left out (it may point
// anywhere). A file that grows while it is read (a history being appended) is cut at
// the size it had when its entry began; one that shrinks is padded with zeros.
func WriteTarball(w io.Writer, dir, prefix string) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 || !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		return addToTar(tw, p, path.Join(prefix, filepath.ToSlash(rel)), d)
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err != nil {
		return fmt.Errorf("tarball of %s: %w", dir, err)
	}
	return nil
}

func addToTar(tw *tar.Writer, file, name string, d fs.DirEntry) error {
	fi, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	h, err := tar.FileInfoHeader(fi, "")
	if err != nil {
		return err
	}
	h.Name = name
	h.Uname, h.Gname = "", ""
	if d.IsDir() {
		h.Name += "/"
		return tw.WriteHeader(h)
	}
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	n, err := io.CopyN(tw, f, h.Size)
	if errors.Is(err, io.EOF) {
		_, err = io.CopyN(tw, zeros{}, h.Size-n)
	}
	return err
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
