package workload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/faultline/faultline/history"
)

// Client is one client's connection to the system under test. A target adapter (in
// harness/) implements it. Every method is ctx-first.
//
// An error is definite — the operation did not and will not take effect, recorded as
// fail — only when errors.As finds in it a value with a Definite() bool method that
// returns true (see Definite and ErrMismatch). Any other error, a timeout included, is
// indeterminate: recorded as info, after which the process is retired.
//
// A Client that also implements io.Closer is closed when its process is retired or
// the run ends.
type Client interface {
	Read(ctx context.Context, key string) (value string, found bool, err error)
	Write(ctx context.Context, key, value string) error
	// CAS sets key to `to` if it holds `from`; a mismatch (a missing key included) is a
	// definite error, preferably one that errors.Is ErrMismatch.
	CAS(ctx context.Context, key, from, to string) error
	Append(ctx context.Context, key, value string) error
	ReadList(ctx context.Context, key string) ([]string, error)
}

// Opener opens the client for a process id and names the node it talks to (recorded
// in each event's Node). The harness picks the node, e.g. process % nodes. It is called
// again, with a new process id, whenever a process is retired.
type Opener func(ctx context.Context, process int) (c Client, node string, err error)

// Config is one workload run. Zero fields take the defaults named beside them.
type Config struct {
	Workload    Kind          // a workload of the registry; default Register
	Concurrency int           // concurrent logical clients (workers); default 10
	Rate        float64       // total ops/s across workers; 0 = as fast as possible
	TimeLimit   time.Duration // stop issuing new ops after this; 0 = until ctx ends
	Keys        int           // concurrently active keys; default 8
	OpsPerKey   int           // register/append: retire a key after this many ops; default 200
	OpTimeout   time.Duration // per-op client deadline; default 2s (expiry → info)
	Seed        int64
	// Progress, if set, is updated as the run goes so that a renderer can poll it;
	// Run makes its own when it is nil.
	Progress *Progress
}

// Defaults for the zero fields of a Config.
const (
	DefaultWorkload    = Register
	DefaultConcurrency = 10
	DefaultKeys        = 8
	DefaultOpsPerKey   = 200
	DefaultOpTimeout   = 2 * time.Second
)

// normalize fills in defaults and rejects what cannot run.
func (c Config) normalize() (Config, error) {
	if c.Workload == "" {
		c.Workload = DefaultWorkload
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.OpsPerKey == 0 {
		c.OpsPerKey = DefaultOpsPerKey
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	switch {
	case !known(c.Workload):
		return c, fmt.Errorf("workload: unknown workload %q (want one of %v)", c.Workload, Names())
	case c.Concurrency < 0 || c.Keys < 0 || c.OpsPerKey < 0:
		return c, fmt.Errorf("workload: concurrency %d, keys %d and ops per key %d must not be negative",
			c.Concurrency, c.Keys, c.OpsPerKey)
	case c.Rate < 0 || c.TimeLimit < 0 || c.OpTimeout < 0:
		return c, fmt.Errorf("workload: rate %v, time limit %v and op timeout %v must not be negative",
			c.Rate, c.TimeLimit, c.OpTimeout)
	}
	return c, nil
}

// ErrMismatch is the definite error of a CAS whose expected value was not there. It is
// recorded as a fail with Error "mismatch".
var ErrMismatch error = &definiteError{msg: history.Mismatch}

// Definite marks err as definite: the operation did not and will not take effect.
// Definite(nil) is nil.
func Definite(err error) error {
	if err == nil {
		return nil
	}
	return &definiteError{msg: err.Error(), err: err}
}

// IsDefinite reports whether err is definite in the sense of Client.
func IsDefinite(err error) bool {
	var d interface{ Definite() bool }
	return errors.As(err, &d) && d.Definite()
}

type definiteError struct {
	msg string
	err error
}

func (e *definiteError) Error() string  { return e.msg }
func (e *definiteError) Unwrap() error  { return e.err }
func (e *definiteError) Definite() bool { return true }

// classify turns an operation's error into its completion type and the event's Error.
func classify(err error) (history.Type, string) {
	switch {
	case err == nil:
		return history.OK, ""
	case errors.Is(err, ErrMismatch):
		return history.Fail, history.Mismatch
	case IsDefinite(err):
		return history.Fail, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return history.Info, "timeout"
	case errors.Is(err, context.Canceled):
		return history.Info, "cancelled"
	default:
		return history.Info, err.Error()
	}
}

func known(k Kind) bool { _, ok := Lookup(k); return ok }
