package history

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func addFixtures(f *testing.F, names ...string) {
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		// Only a prefix: the fuzzer minimizes what it finds from its seeds, which is
		// slow for whole files.
		f.Add(b[:min(len(b), 400)])
	}
}

// FuzzReadJSONL checks that no input makes ReadJSONL panic, and that what it reads
// survives a round trip.
func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"index":0,"time":1,"process":1,"type":"invoke","f":"read","value":null}` + "\n"))
	f.Add([]byte(`{"index":1,"time":2,"process":"nemesis","type":"ok","f":"start-partition","value":["a",1]}` + "\n{\"ind"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, _, err := ReadJSONL(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for _, e := range events {
			line, err := e.MarshalJSON()
			if err != nil {
				t.Fatalf("marshal %+v: %v", e, err)
			}
			buf.Write(append(line, '\n'))
		}
		back, info, err := ReadJSONL(&buf)
		if err != nil || info.Torn || len(back) != len(events) {
			t.Fatalf("round trip: %v, torn %v, %d != %d", err, info.Torn, len(back), len(events))
		}
	})
}

func FuzzReadEDN(f *testing.F) {
	addFixtures(f, "independent.edn", "vector.edn")
	f.Add([]byte(`{:process :nemesis, :type :info, :f :start, :value #{1 \a "x\"y"}} #_ {:a 1}`))
	f.Add([]byte(`({:process 0 :type :ok :f :read :value (1 2N 3.5M -4)})`))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, _, err := ReadJepsenEDN(bytes.NewReader(b))
		if err == nil {
			checkNumbered(t, events)
		}
	})
}

func FuzzReadJepsenLog(f *testing.F) {
	addFixtures(f, "etcd_000.log")
	f.Add([]byte("INFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]\nINFO  jepsen.util - 3\t:info\t:cas\t:timed-out\n"))
	f.Add([]byte("INFO  jepsen.util - :nemesis\t:info\t:start\t{:a [1 #{2}]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, _, err := ReadJepsenLog(bytes.NewReader(b))
		if err == nil {
			checkNumbered(t, events)
		}
	})
}

func checkNumbered(t *testing.T, events []Event) {
	for i, e := range events {
		if e.Index != int64(i) {
			t.Fatalf("event %d has index %d", i, e.Index)
		}
		if e.Type != Invoke && !e.IsCompletion() {
			t.Fatalf("event %d has type %q", i, e.Type)
		}
	}
}

// FuzzFastDecodeAgrees holds the fast line decoder to encoding/json: a line it accepts
// decodes to exactly the event encoding/json makes of it.
func FuzzFastDecodeAgrees(f *testing.F) {
	for _, s := range []string{
		`{"index":0,"time":1,"process":1,"type":"invoke","f":"read","key":"r1","value":null}`,
		`{"index":7,"time":-3,"process":"nemesis","type":"ok","f":"start-partition","value":["one","n1>n2",3.5e2],"node":"n1,n2"}`,
		`{"time":9,"type":"fail","process":12,"f":"cas","value":["1","2"],"error":"mismatch","index":2}`,
		`{"index":1,"time":1,"process":1,"type":"ok","f":"read","value":"é\u00e9","Index":4}`,
		` {"index":01,"time":1,"process":1,"type":"ok","f":"read","value":[]} `,
		`{"index":1,"time":1,"process":-1,"type":"ok","value":1e400}`,
		`{"index":2,"time":5,"process":3,"type":"ok","f":"txn","value":[["append","x","3"],["r",7,["1","2"]],["r","y",null]]}`,
		`{"index":2,"time":5,"process":3,"type":"ok","f":"txn","value":[["r","x",[["a","b","c"]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Twice through one decoder: the second time, its lists are the ones the first
		// kept.
		d := newDecoder()
		for range 2 {
			var fast Event
			if !decodeFast(b, &fast, d) {
				return
			}
			var slow Event
			if err := json.Unmarshal(b, &slow); err != nil {
				t.Fatalf("fast accepted %q, encoding/json refuses it: %v", b, err)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast %+v, encoding/json %+v", b, fast, slow)
			}
		}
	})
}
