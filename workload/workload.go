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

// Leaser is what a Client also implements to run the lease workload; a target whose
// clients do lists workload.Lease among its Workloads. Lease ids are the server's, as
// text. A lease the server does not have (expired, revoked) is the error
// ErrLeaseNotFound (wrapped or not): a definite answer, recorded as a fail with Error
// history.LeaseNotFound, that the lease checker reads as "the lease was gone".
type Leaser interface {
	// Grant creates a lease of ttl and returns its id and the TTL the server granted
	// (which may be longer: servers have a minimum).
	Grant(ctx context.Context, ttl time.Duration) (lease string, granted time.Duration, err error)
	// PutWithLease puts value at key, attached to lease: the key is deleted when the
	// lease ends, by expiry or revoke.
	PutWithLease(ctx context.Context, key, value, lease string) error
	// KeepAlive renews lease once and returns the TTL it was renewed for.
	KeepAlive(ctx context.Context, lease string) (ttl time.Duration, err error)
	// Revoke ends lease, deleting its keys.
	Revoke(ctx context.Context, lease string) error
}

// Transactor is what a Client also implements to run the txn workload; a target whose
// clients do lists workload.Txn among its Workloads. Txn runs the micro-operations as
// one transaction: appends (history.MopAppend, V the value) add to the end of a key's
// list; reads (history.MopRead) return the key's list (V a List; an absent key is the
// empty list), and see the transaction's own appends before them. It returns the
// micro-operations with what each read. An error follows Client's rules: definite only
// when the transaction did not and will not take effect (a conflict that aborted it
// included).
type Transactor interface {
	Txn(ctx context.Context, mops []history.Mop) ([]history.Mop, error)
}

// ErrLeaseNotFound is the definite error of a lease operation on a lease the server
// does not have.
var ErrLeaseNotFound error = &definiteError{msg: history.LeaseNotFound}

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
	LeaseTTL    time.Duration // lease: the TTL each lease is granted with; default 5s, whole seconds
	// CompactInterval, for the kubernetes workload, is the time from one compaction to
	// the next, each to the revision seen at the one before, as the API server's
	// --etcd-compaction-interval; 0: a compaction every thousandth operation or so
	// (every few seconds).
	CompactInterval time.Duration
	Seed            int64
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
	DefaultLeaseTTL    = 5 * time.Second
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
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
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
	case c.CompactInterval < 0:
		return c, fmt.Errorf("workload: compaction interval %v is negative", c.CompactInterval)
	case c.LeaseTTL < time.Second || c.LeaseTTL%time.Second != 0:
		return c, fmt.Errorf("workload: lease TTL %v is not a whole number of seconds, at least 1", c.LeaseTTL)
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
	case errors.Is(err, ErrLeaseNotFound):
		return history.Fail, history.LeaseNotFound
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
