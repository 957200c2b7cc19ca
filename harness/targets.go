package harness

import (
	"context"

	"github.com/faultline/faultline/harness/sut"
)

// stopOnFailure returns ctx, cancelled once t fails, and stop, which ends the watch and
// returns err, or t's failure in its place (what made the run stop) if t failed. A
// target that cannot fail gets ctx itself.
func stopOnFailure(ctx context.Context, t sut.Target) (context.Context, func(err error) error) {
	f, ok := t.(sut.Failer)
	if !ok {
		return ctx, func(err error) error { return err }
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-f.Failed():
			cancel(f.Failure())
		case <-done:
		}
	}()
	return ctx, func(err error) error {
		close(done)
		cancel(nil)
		if ferr := f.Failure(); ferr != nil {
			return ferr
		}
		return err
	}
}
