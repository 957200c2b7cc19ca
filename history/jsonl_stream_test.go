package history

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// bigHistory writes a history past parallelMin (so that it is read on every core) and
// returns its path and its bytes.
func bigHistory(t *testing.T, extra string) (string, []byte) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < parallelMin+parallelBlock; i++ {
		e := Event{Index: int64(i), Time: int64(i), Process: i % 10, Type: []Type{Invoke, OK}[i%2], F: OpCAS, Key: fmt.Sprint("k", i%7),
			Value: L(fmt.Sprint(i), fmt.Sprint(i+1))}
		l, err := e.MarshalJSON()
		require.NoError(t, err)
		buf.Write(append(l, '\n'))
	}
	buf.WriteString(extra)
	path := t.TempDir() + "/history.jsonl"
	require.NoError(t, writeFile(path, buf.Bytes()))
	return path, buf.Bytes()
}

// TestReadFileEach: the batches, in order, are the events ReadFile reads, and what a
// reader keeps of them stays as it was when later batches reuse the memory.
func TestReadFileEach(t *testing.T) {
	for _, extra := range []string{"", `{"index":1,"ti`, "{bad}\n" + `{"index":1,"time":1,"process":1,"type":"invoke","f":"read","key":"k"}` + "\n"} {
		path, data := bigHistory(t, extra)
		want, wantInfo, wantErr := readJSONL(bytes.NewReader(data), 0)
		var got []Event
		batches := 0
		info, err := ReadFileEach(path, func(b []Event) error {
			got = append(got, b...)
			batches++
			return nil
		})
		require.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(err))
		require.Equal(t, wantInfo, info)
		require.Greater(t, batches, 2, "read in blocks")
		require.Equal(t, len(want), len(got))
		for i := range want {
			if !reflect.DeepEqual(want[i], got[i]) {
				t.Fatalf("event %d: read %+v, want %+v", i, got[i], want[i])
			}
		}
	}
}

// TestReadFileEachStops: an error of the reader's own stops the reading and is returned.
func TestReadFileEachStops(t *testing.T) {
	path, _ := bigHistory(t, "")
	stop := errors.New("enough")
	calls := 0
	_, err := ReadFileEach(path, func([]Event) error { calls++; return stop })
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)
}
