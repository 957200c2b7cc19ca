package harness

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/faultline/faultline/harness/runtime/vclock"
	"github.com/stretchr/testify/require"
)

// flakyClocker answers ErrNoVDSO to its first fails calls, as a container's process
// caught between runc and its program does, then takes the clocks.
type flakyClocker struct {
	fails, calls int
	got          vclock.Clocks
}

func (f *flakyClocker) SetClock(_ context.Context, _ string, c vclock.Clocks) error {
	f.calls++
	if f.calls <= f.fails {
		return vclock.ErrNoVDSO
	}
	f.got = c
	return nil
}

func TestProcessClockWaitsOutAProcessMidExec(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flakyClocker{fails: 5}
		pc := newProcessClock(f)
		require.NoError(t, pc.SetClock(context.Background(), "n1", time.Minute, 1))
		require.Equal(t, time.Minute, f.got.Wall.Offset)
		require.NoError(t, pc.reapply(context.Background(), "n1"), "a node restarted under the fault")
		require.Equal(t, 7, f.calls)
	})
}

func TestProcessClockGivesUpOnAProcessWithoutVDSO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &flakyClocker{fails: 1 << 30}
		pc := newProcessClock(f)
		start := time.Now()
		err := pc.SetClock(context.Background(), "n1", time.Minute, 1)
		require.True(t, errors.Is(err, vclock.ErrNoVDSO), "%v", err)
		require.Equal(t, execGrace, time.Since(start).Round(execGrace))
	})
}
