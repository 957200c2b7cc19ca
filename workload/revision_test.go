package workload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// The revisions a client reports reach the history, on acknowledged operations only,
// and the revision check reads them: valid on a correct store, invalid on one whose
// reads answer a revision behind — which the per-key checks pass.
func TestRevisionsReachTheHistoryAndTheCheck(t *testing.T) {
	for _, w := range []Kind{Register, Append, Set} {
		t.Run(string(w), func(t *testing.T) {
			cfg := Config{Workload: w, Concurrency: 5, Rate: 200, TimeLimit: 10 * time.Second, Seed: 5}
			events := runOnSim(t, cfg, nil, true)
			withRev := 0
			for _, e := range events {
				if e.Rev > 0 {
					withRev++
					require.Equal(t, history.OK, e.Type, "a revision on %v", e)
				}
			}
			assert.Greater(t, withRev, 500)
			res := checker.Check(context.Background(), events, checker.Options{Model: modelOf(t, w)})
			require.NotNil(t, res.Revision)
			assert.Equal(t, checker.Valid, res.Verdict, "%s\n%v", res.Summary(), res.Explanations())
			assert.Equal(t, withRev, res.Revision.Ops)

			events = runOnSim(t, cfg, func(s *SimStore) { s.LagReads = true }, true)
			res = checker.Check(context.Background(), events, checker.Options{Model: modelOf(t, w)})
			assert.Equal(t, checker.Invalid, res.Verdict, res.Summary())
			assert.Equal(t, []string{checker.KSRevisionOrder}, res.AnomalyKinds(), "only the revision check sees a read a revision behind")
		})
	}
}

func modelOf(t *testing.T, w Kind) checker.Model {
	t.Helper()
	d, ok := Lookup(w)
	require.True(t, ok)
	return d.Model
}
