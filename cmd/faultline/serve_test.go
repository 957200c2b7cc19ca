package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/faultline/faultline/results"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutine and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestServeCommand(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan results.ExitCode, 1)
	go func() { done <- run(ctx, []string{"serve", "--results", root, "--addr", "127.0.0.1:0"}, &out, &errb) }()
	var url string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`at (http://\S+)`).FindStringSubmatch(out.String())
		if m != nil {
			url = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "serve says where it listens: %s %s", out.String(), errb.String())
	resp, err := http.Get(url)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(b), "faultline runs")
	assert.Empty(t, errb.String(), "no warning on loopback")
	cancel()
	assert.Equal(t, results.ExitValid, <-done, "interrupted, it stops cleanly")

	for name, args := range map[string][]string{
		"missing dir": {"serve", "--results", filepath.Join(root, "none")},
		"bad flag":    {"serve", "--nope"},
		"argument":    {"serve", "--results", root, "extra"},
	} {
		var o, e bytes.Buffer
		assert.Equal(t, results.ExitUsage, run(context.Background(), args, &o, &e), name)
		assert.NotEmpty(t, e.String(), name)
	}
	var o, e bytes.Buffer
	assert.Equal(t, results.ExitError, run(context.Background(), []string{"serve", "--results", root, "--addr", "127.0.0.1:99999"}, &o, &e), "cannot listen")
}
