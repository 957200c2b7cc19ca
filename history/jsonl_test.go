package history

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sample() []Event {
	return []Event{
		{Index: 0, Time: 10, Process: 0, Type: Invoke, F: "read", Key: "r1", Node: "n1"},
		{Index: 1, Time: 20, Process: 0, Type: OK, F: "read", Key: "r1", Value: S1("v1"), Node: "n1"},
		{Index: 2, Time: 25, Process: NemesisProcess, Type: Invoke, F: "start-partition"},
		{Index: 3, Time: 30, Process: 3, Type: Invoke, F: "cas", Key: "r1", Value: L("v1", "v2")},
		{Index: 4, Time: 40, Process: 3, Type: Info, F: "cas", Key: "r1", Value: L("v1", "v2"), Error: "timeout"},
		{Index: 5, Time: 50, Process: 4, Type: OK, F: "read", Key: "l1", Value: L()},
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	var b strings.Builder
	for _, e := range sample() {
		line, err := json.Marshal(e)
		require.NoError(t, err)
		b.Write(append(line, '\n'))
	}
	assert.Contains(t, b.String(), `"process":"nemesis"`)
	assert.Contains(t, b.String(), `"value":null`)
	got, info, err := ReadJSONL(strings.NewReader(b.String()))
	require.NoError(t, err)
	assert.False(t, info.Torn)
	assert.Equal(t, sample(), got)
}

func TestReadJSONLForgivesATornLastLine(t *testing.T) {
	in := `{"index":0,"time":1,"process":1,"type":"invoke","f":"read","value":null}` + "\n" + `{"index":1,"time":2,"proc`
	got, info, err := ReadJSONL(strings.NewReader(in))
	require.NoError(t, err)
	assert.True(t, info.Torn)
	assert.Len(t, got, 1)
}

func TestReadJSONLNamesTheBadLine(t *testing.T) {
	for name, in := range map[string]string{
		"garbage":      "{\"index\":0,\"time\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n\nnot json\n{}\n",
		"unknown type": "{}\n{}\n{\"index\":2,\"process\":1,\"type\":\"done\"}\n",
		"bad process":  "{\"process\":\"someone\",\"type\":\"ok\"}\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := ReadJSONL(strings.NewReader(in))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrBadHistory)
			assert.Regexp(t, `line \d`, err.Error())
		})
	}
}

func TestValueForms(t *testing.T) {
	for in, want := range map[string]Value{
		`null`: {}, `"x"`: S1("x"), `3`: S1("3"), `[]`: L(), `["a",1]`: L("a", "1"),
	} {
		var v Value
		require.NoError(t, json.Unmarshal([]byte(in), &v), in)
		assert.Equal(t, want, v, in)
	}
	var v Value
	assert.Error(t, json.Unmarshal([]byte(`{"a":1}`), &v))
	assert.Equal(t, `[a b]`, L("a", "b").String())
	assert.Equal(t, "nil", Value{}.String())
}

func TestWriterAndRecorder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := CreateWriter(path, 5*time.Millisecond)
	require.NoError(t, err)
	rec := NewRecorder(time.Now(), w)
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				rec.Record(Event{Process: p, Type: Invoke, F: "write", Value: S1("v")})
			}
		}()
	}
	wg.Wait()
	// The background flush puts events on disk before Close.
	require.Eventually(t, func() bool {
		got, _, err := ReadFile(path)
		return err == nil && len(got) == 400
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, w.Close())
	require.NoError(t, w.Close(), "Close is idempotent")
	got, info, err := ReadFile(path)
	require.NoError(t, err)
	assert.False(t, info.Torn)
	require.Len(t, got, 400)
	for i, e := range got {
		assert.Equal(t, int64(i), e.Index)
		if i > 0 {
			assert.GreaterOrEqual(t, e.Time, got[i-1].Time, "times never go backwards")
		}
	}
	assert.NoError(t, rec.Err())
	assert.Len(t, rec.Events(), 400)
	_, _, err = ReadFile(filepath.Join(t.TempDir(), "missing"))
	assert.Error(t, err)
	assert.NoError(t, os.Remove(path))
}

// A stream recorder keeps nothing but counts: the history is the file, whole and in
// order, and memory does not grow with it.
func TestStreamRecorderKeepsNothingAndLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	w, err := CreateWriter(path, 5*time.Millisecond)
	require.NoError(t, err)
	rec := NewStreamRecorder(time.Now(), w)
	assert.Equal(t, -1, rec.MaxProcess())
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			for range 50 {
				rec.Record(Event{Process: p, Type: Invoke, F: "write", Value: S1("v")})
			}
		})
	}
	wg.Wait()
	rec.Record(Event{Process: NemesisProcess, Type: Info, F: "heal"})
	require.NoError(t, w.Close())
	assert.Nil(t, rec.Events())
	assert.Equal(t, int64(401), rec.Len())
	assert.Equal(t, 7, rec.MaxProcess(), "the nemesis is no client")
	got, _, err := ReadFile(path)
	require.NoError(t, err)
	require.Len(t, got, 401)
	for i, e := range got {
		assert.Equal(t, int64(i), e.Index)
		if i > 0 {
			assert.GreaterOrEqual(t, e.Time, got[i-1].Time)
		}
	}

	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapAlloc
	w2, err := CreateWriter(filepath.Join(t.TempDir(), "h2.jsonl"), 5*time.Millisecond)
	require.NoError(t, err)
	rec2 := NewStreamRecorder(time.Now(), w2)
	n := 200_000
	if testing.Short() {
		n = 60_000
	}
	for i := range n {
		rec2.Record(Event{Process: i % 10, Type: OK, F: "write", Key: "k", Value: S1("12345")})
	}
	require.NoError(t, w2.Close())
	runtime.GC()
	runtime.ReadMemStats(&m)
	// An event kept costs 150 bytes and more: a quarter of that per event is well below
	// what keeping them would hold, and well above the writer's own buffers.
	assert.Less(t, int64(m.HeapAlloc)-int64(before), int64(n*40), "%d events recorded; the heap holds none of them", n)
}

func TestTxnValueRoundTrip(t *testing.T) {
	v := T(Mop{F: MopAppend, Key: "x", V: S1("3")}, Mop{F: MopRead, Key: "y", V: L("1", "2")}, Mop{F: MopRead, Key: "z"})
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `[["append","x","3"],["r","y",["1","2"]],["r","z",null]]` {
		t.Fatalf("encoded %s", b)
	}
	e := Event{Index: 3, Time: 5, Process: 1, Type: OK, F: "txn", Value: v}
	line, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if back.Value.String() != "[[append x 3] [r y [1 2]] [r z nil]]" || back.Value.String() != v.String() {
		t.Fatalf("decoded %v from %s", back.Value, line)
	}
	events, _, err := ReadJSONL(strings.NewReader(string(line) + "\n"))
	if err != nil || len(events) != 1 || events[0].Value.String() != v.String() {
		t.Fatalf("read %v, %v", events, err)
	}
	var bad Value
	if err := json.Unmarshal([]byte(`[["append","x"]]`), &bad); err == nil {
		t.Fatal("a micro-operation without a value was accepted")
	}
}
