package results

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

//go:embed serve.tmpl
var serveTmplText string

// serveTmpl is parsed on first use: every faultline command would otherwise parse it
// at start-up, and only serve uses it.
var serveTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("serve").Parse(serveTmplText))
})

// maxRunDepth is how deep below the root the index looks for run directories
// (<test>/<timestamp>/ is 2; campaigns may nest theirs deeper).
const maxRunDepth = 4

// runRow is one run of the index.
type runRow struct {
	Path                      string // slash-separated, below the root
	Test, Stamp               string
	Start                     time.Time
	Target, Runtime, Workload string
	TargetName                string
	Faults                    []string
	Ops                       int
	Duration                  string
	Verdict                   string // valid, invalid, unknown, or "in progress"
	Why                       string
	Report                    bool
	// Campaign is the path of the campaign directory the run is in ("" for none), and
	// CampaignName its name.
	Campaign, CampaignName string
}

// campaignRow is one campaign directory of the index: its runs are a group.
type campaignRow struct {
	Path, Name, Shard, Stamp        string
	Runs, Planned                   int
	Valid, Invalid, Unknown, Errors int
	Exit                            int
	Failed                          []string // the scenarios that failed their expectation, and why
	Start                           time.Time
}

// Started is the campaign's start, from its directory's stamp.
func (c campaignRow) Started() string {
	if c.Start.IsZero() {
		return c.Stamp
	}
	return c.Start.UTC().Format("2006-01-02 15:04:05")
}

// Class is the CSS class of its exit code.
func (c campaignRow) Class() string {
	return [...]string{"valid", "invalid", "unknown", "invalid"}[min(c.Exit, 3)]
}

// readCampaignRow reads a campaign directory's index for the index page.
func readCampaignRow(dir, rel string) (campaignRow, bool) {
	ix, err := ReadCampaign(dir)
	if err != nil {
		return campaignRow{}, false
	}
	c := campaignRow{Path: rel, Name: ix.Name, Shard: ix.Shard, Stamp: path.Base(rel), Runs: len(ix.Runs), Planned: len(ix.Planned), Exit: int(ix.Exit())}
	if t, err := time.Parse("20060102T150405Z", strings.SplitN(c.Stamp, "-", 2)[0]); err == nil {
		c.Start = t
	}
	for _, r := range ix.Rows() {
		c.Valid, c.Invalid, c.Unknown, c.Errors = c.Valid+r.Valid, c.Invalid+r.Invalid, c.Unknown+r.Unknown, c.Errors+r.Errors
		if r.Failed != "" {
			c.Failed = append(c.Failed, r.Name+": "+r.Failed)
		}
	}
	return c, true
}

// Started is the run's start for the index, in UTC.
func (r runRow) Started() string {
	if r.Start.IsZero() {
		return r.Stamp
	}
	return r.Start.UTC().Format("2006-01-02 15:04:05")
}

// Class is the verdict's CSS class.
func (r runRow) Class() string { return strings.ReplaceAll(r.Verdict, " ", "-") }

// inProgress is the verdict of a run directory without results.json.
const inProgress = "in progress"

// indexCache keeps each run's row until one of the files it was read from changes, so
// that the index of a nightly job's hundreds of runs reads only what is new.
type indexCache struct {
	mu   sync.Mutex
	rows map[string]cachedRow
}

type cachedRow struct {
	stamp string // the sizes and times of the files the row was read from
	row   runRow
}

func newIndexCache() *indexCache { return &indexCache{rows: map[string]cachedRow{}} }

// runs returns every run below the root, newest first, and every campaign directory,
// newest first: the runs below a campaign directory name it.
func (s *Server) runs() ([]runRow, []campaignRow) {
	var out []runRow
	var camps []campaignRow
	seen := map[string]bool{}
	var walk func(dir, rel string, depth int, camp *campaignRow)
	walk = func(dir, rel string, depth int, camp *campaignRow) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		if depth > 0 && isRunDir(ents) {
			r := s.index.row(dir, rel)
			if camp != nil {
				r.Campaign, r.CampaignName = camp.Path, camp.Name
			}
			out = append(out, r)
			seen[rel] = true
			return
		}
		if depth == maxRunDepth {
			return
		}
		if slices.ContainsFunc(ents, func(e os.DirEntry) bool { return e.Name() == CampaignIndexFile }) {
			if c, ok := readCampaignRow(dir, rel); ok {
				camps = append(camps, c)
				camp = &campaignRow{Path: c.Path, Name: c.Name} // not into camps: it may grow
			}
		}
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") { // symbolic links (latest) are not followed
				walk(filepath.Join(dir, e.Name()), path.Join(rel, e.Name()), depth+1, camp)
			}
		}
	}
	walk(s.root, "", 0, nil)
	slices.SortStableFunc(camps, func(a, b campaignRow) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	s.index.forgetOthers(seen)
	slices.SortStableFunc(out, func(a, b runRow) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	return out, camps
}

func isRunDir(ents []os.DirEntry) bool {
	return slices.ContainsFunc(ents, func(e os.DirEntry) bool {
		n := e.Name()
		return !e.IsDir() && (n == TestFile || n == ResultsFile || n == "history.jsonl")
	})
}

// row returns the run's row, read again only when its files changed.
func (c *indexCache) row(dir, rel string) runRow {
	var stamp strings.Builder
	for _, f := range []string{TestFile, ResultsFile, "history.jsonl", ReportFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			fmt.Fprintf(&stamp, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
		} else {
			stamp.WriteString("-;")
		}
	}
	c.mu.Lock()
	cached, ok := c.rows[rel]
	c.mu.Unlock()
	if ok && cached.stamp == stamp.String() {
		return cached.row
	}
	r := readRun(dir, rel)
	c.mu.Lock()
	c.rows[rel] = cachedRow{stamp: stamp.String(), row: r}
	c.mu.Unlock()
	return r
}

func (c *indexCache) forgetOthers(seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.rows {
		if !seen[k] {
			delete(c.rows, k)
		}
	}
}

// readRun reads a run's row from its test.json, results.json and the last event of its
// history. What is missing or unreadable (a run being written) is left blank.
func readRun(dir, rel string) runRow {
	r := runRow{Path: rel, Stamp: path.Base(rel), Test: path.Dir(rel), Verdict: inProgress}
	if r.Test == "." {
		r.Test = ""
	}
	if t, err := time.Parse("20060102T150405Z", strings.SplitN(r.Stamp, "-", 2)[0]); err == nil {
		r.Start = t
	}
	if info, ok, _ := ReadTestInfo(dir); ok {
		r.Test = cmp.Or(info.Name, r.Test)
		r.Target, r.Runtime, r.Workload, r.Faults = info.TargetLabel(), info.Runtime, info.Workload, info.Faults
		r.TargetName = info.Target.Name
		if !info.Start.IsZero() {
			r.Start = info.Start
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, ResultsFile)); err == nil {
		var res struct {
			Valid          checker.Verdict  `json:"valid"`
			UnknownBecause []checker.Reason `json:"unknown_because"`
			Workload       string           `json:"workload"` // results.json of an older faultline
			Model          string           `json:"model"`
			Stats          struct {
				Counts map[string]map[string]int `json:"counts"`
			} `json:"stats"`
		}
		if json.Unmarshal(b, &res) == nil {
			r.Verdict = string(res.Valid)
			r.Workload = cmp.Or(r.Workload, res.Model, res.Workload)
			for _, by := range res.Stats.Counts {
				for _, n := range by {
					r.Ops += n
				}
			}
			for i, u := range res.UnknownBecause {
				if i > 0 {
					r.Why += "; "
				}
				r.Why += u.Detail
			}
		}
	}
	if t, ok := lastEventTime(filepath.Join(dir, "history.jsonl")); ok {
		r.Duration = roundDuration(time.Duration(t)).String()
	}
	_, err := os.Stat(filepath.Join(dir, ReportFile))
	r.Report = err == nil
	return r
}

// roundDuration rounds a run's length for the index: to milliseconds under 10 s, to a
// tenth of a second under 10 min, to seconds beyond.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < 10*time.Second:
		return d.Round(time.Millisecond)
	case d < 10*time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// lastEventTime reads the time of the last whole event of a history: the run's length
// so far. Only the file's tail is read; a torn last line (a run being written) is
// skipped.
func lastEventTime(file string) (int64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	const tail = 64 << 10
	off := max(0, st.Size()-tail)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return 0, false
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' && len(lines) > 0 {
		lines = lines[:len(lines)-1] // torn: still being written
	}
	for i := len(lines) - 1; i >= 0 && i >= len(lines)-3; i-- {
		var e history.Event
		if json.Unmarshal(lines[i], &e) == nil {
			return e.Time, true
		}
	}
	return 0, false
}

// indexPage is what serve.tmpl shows as the index.
type indexPage struct {
	Root                                 string
	Runs                                 []runRow
	Campaigns                            []campaignRow
	Total                                int
	Verdicts, Targets, Workloads, Faults []string
	Want                                 map[string]string
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	all, camps := s.runs()
	q := r.URL.Query()
	want := map[string]string{"verdict": q.Get("verdict"), "target": q.Get("target"), "workload": q.Get("workload"), "fault": q.Get("fault"),
		"campaign": q.Get("campaign")}
	page := indexPage{Root: s.root, Total: len(all), Want: want}
	for _, c := range camps {
		if want["campaign"] == "" || want["campaign"] == c.Path {
			page.Campaigns = append(page.Campaigns, c)
		}
	}
	sets := map[string]map[string]bool{"verdict": {}, "target": {}, "workload": {}, "fault": {}, "campaign": {}}
	for _, run := range all {
		values := map[string][]string{"verdict": {run.Verdict}, "target": {run.TargetName}, "workload": {run.Workload}, "fault": run.Faults,
			"campaign": {run.Campaign}}
		match := true
		for k, vs := range values {
			for _, v := range vs {
				if v != "" {
					sets[k][v] = true
				}
			}
			if want[k] != "" && !slices.Contains(vs, want[k]) {
				match = false
			}
		}
		if match {
			page.Runs = append(page.Runs, run)
		}
	}
	sorted := func(k string) []string { return slices.Sorted(maps.Keys(sets[k])) }
	page.Verdicts, page.Targets, page.Workloads, page.Faults = sorted("verdict"), sorted("target"), sorted("workload"), sorted("fault")
	render(w, "index", page)
}

// listingPage is a directory of a run, as serve.tmpl shows it.
type listingPage struct {
	Path   string
	Run    bool // a run directory: offer its report and its tarball
	Report bool
	Files  []fileLink
}

func (s *Server) serveListing(w http.ResponseWriter, r *http.Request, rel, real string) {
	ents, err := os.ReadDir(real)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	page := listingPage{Path: rel, Run: isRunDir(ents), Files: listFiles(real, nil)}
	page.Report = slices.ContainsFunc(page.Files, func(f fileLink) bool { return f.Name == ReportFile })
	render(w, "listing", page)
}

func render(w http.ResponseWriter, name string, page any) {
	var b bytes.Buffer
	if err := serveTmpl().ExecuteTemplate(&b, name, page); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", indexPolicy)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}
