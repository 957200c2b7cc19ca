package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/nemesis"
)

// Waiting for a cluster, and watching its nodes: what a run does around its nodes'
// lives (start.go), apart from the run's phases themselves (run.go).

// waitReady polls the target until the cluster serves. A node that exits meanwhile ends
// the wait at once, with the tail of its log: it will not get ready by itself.
func (r *run) waitReady(ctx context.Context, names []string) error {
	var last error
	for {
		for _, n := range names {
			if !r.rt.Running(n) {
				return fmt.Errorf("%s exited while starting; the end of its log (nodes/%s/):\n%s", n, n,
					logTail(filepath.Join(r.dir, "nodes", n), 5))
			}
		}
		if last = r.target.Ready(ctx); last == nil {
			return nil
		}
		if f, ok := r.target.(sut.Failer); ok {
			select {
			case <-f.Failed(): // it gave up itself (a target file's ready.timeout), saying why
				return f.Failure()
			default:
			}
		}
		if !nemesis.Sleep(ctx, 200*time.Millisecond) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("not ready in the time allowed; the last answer: %v", last)
			}
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		}
	}
}

// logTail returns the last n lines of the newest log in dir, indented ("  (no log)" if
// none). A program that died of a panic or a fatal error ends its log with a stack: the
// last line that says why ("panic: ...", a zap "panic"/"fatal" entry) comes first.
func logTail(dir string, n int) string {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var newest string
	var at time.Time
	for _, l := range logs {
		if st, err := os.Stat(l); err == nil && st.ModTime().After(at) {
			newest, at = l, st.ModTime()
		}
	}
	b, err := os.ReadFile(newest)
	if err != nil {
		return "  (no log)"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines := all[max(0, len(all)-n):]
	for i := len(all) - 1; i >= 0 && i >= len(all)-2000; i-- {
		l := all[i]
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") ||
			strings.Contains(l, `"level":"panic"`) || strings.Contains(l, `"level":"fatal"`) {
			if i < len(all)-n {
				lines = append([]string{l, "…"}, lines...)
			}
			break
		}
	}
	for i, l := range lines {
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// watchExits checks twice a second, until ctx ends or the returned func is called,
// for nodes that exited by themselves, and once a second who leads: a change is
// recorded as a nemesis observation (history.LeaderChange), for the report.
func (r *run) watchExits(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				r.logf("exit watcher panicked (no more exits are noted): %v", p)
			}
		}()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		leader := ""
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.cl.CheckExits()
				if i%2 == 0 {
					lctx, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
					l, err := r.target.Leader(lctx)
					cancel()
					if err == nil && l != "" && l != leader {
						leader = l
						r.rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Info, F: history.LeaderChange, Node: l})
					}
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
