package workload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

func TestGeneratorKeysAndValues(t *testing.T) {
	for _, tc := range []struct {
		workload  string
		keys, per int
		fs        []string
	}{
		{"register", 2, 5, []string{"read", "write", "cas"}},
		{"append", 3, 7, []string{"read", "append"}},
		{"set", 2, 5, []string{"read", "add"}},
	} {
		t.Run(tc.workload, func(t *testing.T) {
			cfg, err := Config{Workload: Kind(tc.workload), Keys: tc.keys, OpsPerKey: tc.per}.normalize()
			require.NoError(t, err)
			g := newGenerator(mustDef(cfg.Workload), cfg)
			r := workerRand(1, 0)
			perKey := map[string]int{}
			values := map[string]map[string]bool{}
			fs := map[string]int{}
			const n = 2000
			for range n {
				o := g.next(r)
				perKey[o.key]++
				fs[o.f]++
				assert.Equal(t, tc.workload != "register" && o.f == "read", o.list)
				if o.f == "cas" && o.from != neverWritten {
					assert.True(t, values[o.key][o.from], "cas %s expects a value of its key", o.from)
				}
				if o.f != "read" {
					if values[o.key] == nil {
						values[o.key] = map[string]bool{}
					}
					assert.False(t, values[o.key][o.arg], "value %s of %s not unique", o.arg, o.key)
					values[o.key][o.arg] = true
				}
			}
			assert.ElementsMatch(t, tc.fs, keysOf(fs))
			if tc.workload == "set" {
				assert.Len(t, perKey, tc.keys, "set keys never rotate")
				return
			}
			full, partial := 0, 0
			for _, c := range perKey {
				assert.LessOrEqual(t, c, tc.per, "keys retire after OpsPerKey ops")
				if c == tc.per {
					full++
				} else {
					partial++
				}
			}
			assert.LessOrEqual(t, partial, tc.keys, "only the active keys are not full")
			assert.Greater(t, full, n/tc.per-tc.keys, "a fresh key per retired one")
		})
	}
}

func TestGeneratorMix(t *testing.T) {
	cfg, err := Config{Workload: "register", Keys: 4, OpsPerKey: 1000}.normalize()
	require.NoError(t, err)
	g := newGenerator(mustDef(cfg.Workload), cfg)
	r := workerRand(9, 3)
	fs := map[string]int{}
	const n = 10000
	for range n {
		fs[g.next(r).f]++
	}
	assert.InDelta(t, 0.5, float64(fs["read"])/n, 0.03)
	assert.InDelta(t, 0.3, float64(fs["write"])/n, 0.03)
	assert.InDelta(t, 0.2, float64(fs["cas"])/n, 0.03)
}

func TestSimStore(t *testing.T) {
	ctx := context.Background()
	s := NewSimStore(1)
	_, found, err := s.Read(ctx, "k")
	require.NoError(t, err)
	assert.False(t, found)
	assert.ErrorIs(t, s.CAS(ctx, "k", "", "1"), ErrMismatch, "cas on a missing key")
	require.NoError(t, s.Write(ctx, "k", "1"))
	require.NoError(t, s.CAS(ctx, "k", "1", "2"))
	assert.True(t, IsDefinite(s.CAS(ctx, "k", "1", "3")))
	v, found, err := s.Read(ctx, "k")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "2", v)
	require.NoError(t, s.Append(ctx, "l", "a"))
	require.NoError(t, s.Append(ctx, "l", "b"))
	l, err := s.ReadList(ctx, "l")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, l)
	l, err = s.ReadList(ctx, "none")
	require.NoError(t, err)
	assert.NotNil(t, l)
	assert.Empty(t, l)

	t.Run("lost replies apply about half the time", func(t *testing.T) {
		s := NewSimStore(2)
		s.Lost = 1
		for range 200 {
			assert.ErrorIs(t, s.Append(ctx, "l", "x"), ErrSimLost)
			assert.False(t, IsDefinite(ErrSimLost))
		}
		s.Lost = 0
		l, err := s.ReadList(ctx, "l")
		require.NoError(t, err)
		assert.InDelta(t, 100, len(l), 30)
	})
	t.Run("ctx ends before the op applies", func(t *testing.T) {
		s := NewSimStore(3)
		s.Latency = time.Hour
		cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, s.Write(cctx, "k", "1"), context.DeadlineExceeded)
	})
}

func TestProgressZeroValue(t *testing.T) {
	var p Progress
	p.touch("a")
	p.touch("b")
	p.touch("a")
	p.count(history.OK)
	p.count(history.Info)
	p.count(history.Invoke)
	assert.Equal(t, Stats{OK: 1, Info: 1, Keys: []string{"a", "b"}}, p.Stats())
}

func mustDef(k Kind) *Def {
	if k == "" {
		k = DefaultWorkload
	}
	d, ok := Lookup(k)
	if !ok {
		panic("no workload " + k)
	}
	return d
}
