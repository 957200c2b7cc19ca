package history

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// An event's revision survives the writer and both readers; a negative one is refused.
func TestRevisionRoundTrips(t *testing.T) {
	e := Event{Index: 3, Time: 9, Process: 1, Type: OK, F: OpRead, Key: "k", Value: S1("v"), Rev: 1234}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fast, slow Event
	if !decodeFast(b, &fast, newDecoder()) || json.Unmarshal(b, &slow) != nil {
		t.Fatalf("%s was refused", b)
	}
	if !reflect.DeepEqual(fast, e) || !reflect.DeepEqual(slow, e) {
		t.Errorf("%s decoded as %+v and %+v", b, fast, slow)
	}
	bad := []byte(`{"index":0,"time":1,"process":0,"type":"ok","f":"read","value":"v","rev":-1}`)
	if decodeFast(bad, &fast, newDecoder()) || json.Unmarshal(bad, &slow) == nil {
		t.Errorf("a negative revision was taken")
	}
}

// TestDecoderSharesLists: reads of one list that are prefixes or extensions of one
// another share storage; each still decodes to what encoding/json makes of its line,
// and stays so after the lines that follow it (a list that extends the kept one must
// not write into an earlier read's elements).
func TestDecoderSharesLists(t *testing.T) {
	lines := []string{
		`{"index":0,"time":1,"process":0,"type":"ok","f":"read","value":["a"],"rev":42}`,
		`{"index":1,"time":2,"process":0,"type":"ok","f":"read","value":["a","b"]}`,
		`{"index":2,"time":3,"process":0,"type":"ok","f":"read","value":["a"]}`,
		`{"index":3,"time":4,"process":0,"type":"ok","f":"txn","value":[["r","k",["a","b","c"]],["append","k","d"]]}`,
		`{"index":4,"time":5,"process":0,"type":"ok","f":"read","value":["a","x"]}`,
		`{"index":5,"time":6,"process":0,"type":"ok","f":"txn","value":[["r","k",["a","b","c","d"]],["r","j",[1,2]]]}`,
		`{"index":6,"time":7,"process":0,"type":"ok","f":"read","value":["a","b","y"]}`,
		`{"index":7,"time":8,"process":0,"type":"ok","f":"read","value":[]}`,
	}
	d := newDecoder()
	var got, want []Event
	for _, l := range lines {
		var fast, slow Event
		if !decodeFast([]byte(l), &fast, d) {
			t.Fatalf("fast path refused %s", l)
		}
		if err := json.Unmarshal([]byte(l), &slow); err != nil {
			t.Fatal(err)
		}
		got, want = append(got, fast), append(want, slow)
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("line %d: decoded %+v, encoding/json %+v", i, got[i].Value, want[i].Value)
		}
	}
	// a prefix of the kept list, and an extension that fits the kept list's array,
	// share it (one that does not fit moves the kept list to a larger array)
	same := func(a, b []string) bool { return &a[0] == &b[0] }
	if !same(got[1].Value.L, got[2].Value.L) || !same(got[3].Value.T[0].V.L, got[5].Value.T[0].V.L) {
		t.Errorf("prefixes of one list do not share storage")
	}
	// a list that diverges from the kept one is its own
	if same(got[4].Value.L, got[1].Value.L) || !slices.Equal(got[4].Value.L, []string{"a", "x"}) {
		t.Errorf("a diverging list shares storage, or reads wrong: %v", got[4].Value.L)
	}
	// capacities end at lengths: a consumer's append copies
	if l := got[1].Value.L; cap(l) != len(l) {
		t.Errorf("a shared list has capacity %d past its length %d", cap(l), len(l))
	}
}
