package docker

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// imageFile is one file of the node image's root filesystem.
type imageFile struct {
	path string // absolute, in the image
	mode int64
	data []byte
}

// libDirs are where shared libraries are looked for on this host, after the object's own
// RUNPATH and the directory of its loader (Debian's multiarch layout and the classic ones).
var libDirs = []string{
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
	"/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
}

// nodeImageFiles returns the files a FROM-scratch image needs to run the program at
// binPath as entry. A static program (CGO_ENABLED=0, as `make build` makes) is
// all it needs. A dynamically linked one (a plain `go build` with a C compiler around
// links the cgo resolver) also gets its loader and, recursively, the shared libraries
// it names, copied from this host to the same paths; libDir returns the directories
// those libraries are in, for the image's LD_LIBRARY_PATH (a scratch image has no
// ld.so.cache).
func nodeImageFiles(binPath, entry string) (files []imageFile, libPath []string, err error) {
	real, err := filepath.EvalSymlinks(binPath)
	if err != nil {
		return nil, nil, fmt.Errorf("node binary: %w", err)
	}
	bin, err := os.ReadFile(real)
	if err != nil {
		return nil, nil, fmt.Errorf("node binary: %w", err)
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return nil, nil, fmt.Errorf("node binary %s: not a linux executable: %w", real, err)
	}
	defer f.Close()
	files = []imageFile{{path: entry, mode: 0o755, data: bin}}
	interp, err := interpreter(f)
	if err != nil || interp == "" {
		return files, nil, err
	}
	deps := &libSet{seen: map[string]bool{}}
	if err := deps.addFile(interp, interp); err != nil {
		return nil, nil, fmt.Errorf("node binary %s: its loader: %w", real, err)
	}
	loaderDir := ""
	if r, err := filepath.EvalSymlinks(interp); err == nil {
		loaderDir = filepath.Dir(r)
	}
	if err := deps.addNeeded(f, loaderDir); err != nil {
		return nil, nil, fmt.Errorf("node binary %s: %w", real, err)
	}
	return append(files, deps.files...), deps.dirs, nil
}

// interpreter returns the program's PT_INTERP (its dynamic loader), "" for a static one.
func interpreter(f *elf.File) (string, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return "", fmt.Errorf("read the loader's name: %w", err)
		}
		return string(bytes.TrimRight(b, "\x00")), nil
	}
	return "", nil
}

// libSet gathers shared libraries and the directories they were found in.
type libSet struct {
	files []imageFile
	dirs  []string
	seen  map[string]bool
}

// addFile copies the host's file at host (links followed) to path in the image.
func (s *libSet) addFile(path, host string) error {
	if s.seen[path] {
		return nil
	}
	data, err := os.ReadFile(host)
	if err != nil {
		return err
	}
	s.seen[path] = true
	s.files = append(s.files, imageFile{path: path, mode: 0o755, data: data})
	return nil
}

// addNeeded adds every library f names (DT_NEEDED), and theirs in turn.
func (s *libSet) addNeeded(f *elf.File, loaderDir string) error {
	needed, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("read its needed libraries: %w", err)
	}
	var search []string
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		if paths, err := f.DynString(tag); err == nil {
			for _, p := range paths {
				search = append(search, strings.Split(p, ":")...)
			}
		}
	}
	if loaderDir != "" {
		search = append(search, loaderDir)
	}
	search = append(search, libDirs...)
	for _, name := range needed {
		path, err := findLib(name, search)
		if err != nil {
			return err
		}
		if s.seen[path] {
			continue
		}
		if err := s.addFile(path, path); err != nil {
			return fmt.Errorf("library %s: %w", name, err)
		}
		if dir := filepath.Dir(path); !slices.Contains(s.dirs, dir) {
			s.dirs = append(s.dirs, dir)
		}
		lf, err := elf.Open(path)
		if err != nil {
			return fmt.Errorf("library %s: %w", path, err)
		}
		err = s.addNeeded(lf, loaderDir)
		lf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// findLib returns the first dir/name that exists.
func findLib(name string, dirs []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("library " + name + " is not in " + strings.Join(dirs, ", "))
}
