package history

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// BenchmarkReadJSONL reads 100k events as a run writes them: ReadJSONL (the fast
// decoder) against encoding/json per line (what it did before).
func BenchmarkReadJSONL(b *testing.B) {
	var buf bytes.Buffer
	for i := range 100_000 {
		e := Event{Index: int64(i), Time: int64(i) * 1000, Process: i % 10, Type: []Type{Invoke, OK}[i%2], F: "write",
			Key: "r" + strconv.Itoa(i/400), Value: S1(strconv.Itoa(i)), Node: "n1"}
		line, _ := e.MarshalJSON()
		buf.Write(append(line, '\n'))
	}
	data := buf.Bytes()
	b.Run("ReadJSONL", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			if _, _, err := ReadJSONL(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
				var e Event
				if err := json.Unmarshal(line, &e); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
