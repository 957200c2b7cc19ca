// Package etcdclient is faultline's workload client of one etcd member, over
// go.etcd.io/etcd/client/v3, with errors classified as workload.Client's contract asks
// (definite only where etcd's server source shows a request was never proposed) and
// no retry of a mutation: shared by the etcd target and target files whose protocol is
// etcd.
package etcdclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/workload"
)

// Config configures one workload client of one etcd member.
type Config struct {
	// Endpoint is host:port of ONE member's client URL. There is no failover: every
	// operation of the client goes to this member, so that it is attributed to one node.
	Endpoint string
	// OpTimeout bounds each operation (0: only the caller's ctx does, which also applies).
	OpTimeout time.Duration
	// Serializable makes Read and ReadList serializable (clientv3.WithSerializable): the
	// member answers from its local state without consulting the leader. This is a known
	// unsafe mode (stale reads), used to prove that the checker catches them.
	Serializable bool
	// Logger is the etcd client's logger; nil means none (zap.NewNop()).
	Logger *zap.Logger
}

// Client is a workload.Client (and io.Closer) over go.etcd.io/etcd/client/v3, talking to
// one member.
//
// Registers are plain keys: Read = Get, Write = Put, CAS = a Txn comparing the value. A
// list (append and set workloads) is a key whose value is a JSON array of strings.
//
// Errors follow workload.Client's contract. A read error is always definite: a read
// changes nothing, so failing it is never wrong, and it keeps the process alive. A Put or
// Txn error is definite only when etcd's server source shows the request was rejected
// before it was proposed to raft (see classify); anything else — timeouts, lost
// connections, "request timed out", "leader changed", Unavailable — is indeterminate.
// The client never retries a mutation (see New), so one operation is at most one
// request.
type Client struct {
	cfg Config
	cli *clientv3.Client
}

var _ workload.Client = (*Client)(nil)

// Client configuration; see New for why each is what it is.
const (
	dialTimeout          = 3 * time.Second
	dialKeepAliveTime    = 10 * time.Second // grpc-go's minimum; above etcd's default --grpc-keepalive-min-time 5s
	dialKeepAliveTimeout = 5 * time.Second
)

// New returns a client of the member at cfg.Endpoint. It does not wait for the
// member, which may be down (the nemesis may have killed it): operations then fail, as
// the error rules say. ctx bounds only the call itself.
//
// Retries. A mutation that may have reached the server must never be retried by the
// client: a Put that applies twice but is recorded as one operation is a false history
// (the class of bug Jepsen found in jetcd 0.8.2). clientv3 v3.7.3 retries in its own
// unary interceptor, (*Client).unaryClientInterceptor in retry_interceptor.go, installed by
// (*Client).dialSetupOpts in client.go with withMax(MaxUnaryRetries), where
// MaxUnaryRetries 0 means the default 100 (options.go, defaultUnaryMaxRetries). Put and Txn
// get the nonRepeatable policy (retry.go, retryKVClient: only Range gets
// withRepeatablePolicy), so isSafeRetry → isSafeRetryMutableRPC retries them only on
// Unavailable "there is no address/connection available" — but before that check the
// loop retries ANY method whose error has code DeadlineExceeded or Canceled while the
// caller's ctx is still live (the isContextError branch: "its the callCtx deadline or
// cancellation, in which case try again"), and a server can send such a status after it
// proposed the request. Neither condition proves the request was not sent. So we set
// MaxUnaryRetries = 1: the loop `for attempt := 0; attempt < max` then makes exactly one
// invocation for every unary RPC, whatever the error (TestNoClientRetries pins this
// against a server that returns the errors the default configuration retries). Further:
//   - grpc.WithDisableRetry turns off gRPC's service-config retries (grpc-go stream.go,
//     csAttempt.shouldRetry). etcd's resolver (internal/resolver) sets no retry policy
//     today; this keeps it so. gRPC's transparent retry stays: it happens only on the first
//     attempt of a stream the server never processed (HTTP/2 REFUSED_STREAM, or GOAWAY
//     below the stream's id; transport.Stream.Unprocessed), which cannot have been applied.
//   - One endpoint, no AutoSyncInterval: the balancer has a single address, so there is
//     no failover to another member either.
//
// Other settings: the logger is a no-op unless cfg.Logger is set; DialTimeout bounds the
// client's own setup RPCs (grpc.New does not block on the connection); keepalive
// pings (10 s, 5 s timeout, only while RPCs are active, as etcd's server requires) let a
// connection through a dead path be noticed and replaced rather than hang until TCP
// gives up.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("etcd client: no endpoint")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lg := cfg.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	cli, err := clientv3.New(RawConfig(cfg.Endpoint, lg))
	if err != nil {
		return nil, fmt.Errorf("etcd client of %s: %w", cfg.Endpoint, err)
	}
	return &Client{cfg: cfg, cli: cli}, nil
}

// clientConfig is the clientv3 configuration New uses (see there).
func RawConfig(endpoint string, lg *zap.Logger) clientv3.Config {
	return clientv3.Config{
		Endpoints:            []string{endpoint},
		DialTimeout:          dialTimeout,
		DialKeepAliveTime:    dialKeepAliveTime,
		DialKeepAliveTimeout: dialKeepAliveTimeout,
		MaxUnaryRetries:      1, // one attempt: never a retry (0 would mean the default, 100)
		DialOptions:          []grpc.DialOption{grpc.WithDisableRetry()},
		Logger:               lg,
		// AutoSyncInterval 0: never learn other members' endpoints.
	}
}

// Close closes the client's connection.
func (c *Client) Close() error {
	if err := c.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// opCtx bounds one operation by OpTimeout. Unless the operation is a serializable read, it
// also asks the member to reject it if it has no leader (clientv3.WithRequireLeader: the
// server's unary interceptor then answers "etcdserver: no leader" before calling the
// handler). A member cut off from the rest of the cluster loses its leader after an
// election timeout; without this, its linearizable reads and its writes would hang until
// the op timeout and writes would end indeterminate (info), retiring the process; with it
// they fail fast and definitely (see classify). It cannot make a correct answer wrong:
// the check only rejects. Serializable reads go without it, because answering from a
// member's local, possibly stale, state is the point of that mode, and a member that
// lost its leader is the likeliest to be stale.
func (c *Client) opCtx(ctx context.Context, requireLeader bool) (context.Context, context.CancelFunc) {
	cancel := context.CancelFunc(func() {})
	if c.cfg.OpTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.cfg.OpTimeout)
	}
	if requireLeader {
		ctx = clientv3.WithRequireLeader(ctx)
	}
	return ctx, cancel
}

func (c *Client) readOpts() []clientv3.OpOption {
	if c.cfg.Serializable {
		return []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return nil
}

// Read gets key. Any error is definite (a read changes nothing).
func (c *Client) Read(ctx context.Context, key string) (string, bool, error) {
	ctx, cancel := c.opCtx(ctx, !c.cfg.Serializable)
	defer cancel()
	resp, err := c.cli.Get(ctx, key, c.readOpts()...)
	if err != nil {
		return "", false, Classify(err, false)
	}
	workload.ReportRevision(ctx, resp.Header.Revision)
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// Write puts value at key.
func (c *Client) Write(ctx context.Context, key, value string) error {
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	resp, err := c.cli.Put(ctx, key, value)
	if err != nil {
		return Classify(err, true)
	}
	workload.ReportRevision(ctx, resp.Header.Revision)
	return nil
}

// CAS sets key to `to` if its value is `from`, in one Txn. A failed compare, a missing key
// included (etcd fails a value compare on a missing key), is workload.ErrMismatch.
func (c *Client) CAS(ctx context.Context, key, from, to string) error {
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", from)).
		Then(clientv3.OpPut(key, to)).
		Commit()
	if err != nil {
		return Classify(err, true)
	}
	if !resp.Succeeded {
		return workload.ErrMismatch
	}
	workload.ReportRevision(ctx, resp.Header.Revision)
	return nil
}

// Append adds value to the end of key's list: read the list and its ModRevision, then a
// Txn that writes list+[value] only if the key's ModRevision is still that (or, for an
// absent key, its CreateRevision is 0). If the compare fails, someone else changed the
// key: the Txn applied nothing, and its Else branch returned the key's new state, so it
// tries again from there, until ctx ends. Every error before the final Txn is therefore
// definite (nothing of this append was applied); the final Txn's error is classified as
// a mutation's. Values must be valid UTF-8 (JSON strings); an invalid one is rejected,
// definitely, before anything is sent.
func (c *Client) Append(ctx context.Context, key, value string) error {
	if !utf8.ValidString(value) {
		return workload.Definite(fmt.Errorf("append: value %q is not valid UTF-8", value))
	}
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return Classify(err, false)
	}
	kvs := resp.Kvs
	for attempt := 1; ; attempt++ {
		var list []string
		var cmp clientv3.Cmp
		if len(kvs) == 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		} else {
			if list, err = decodeList(kvs[0].Value); err != nil {
				return workload.Definite(fmt.Errorf("append to %q: %w", key, err))
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)
		}
		enc, err := json.Marshal(append(list, value))
		if err != nil {
			return workload.Definite(fmt.Errorf("append: %w", err))
		}
		tresp, err := c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(enc))).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return Classify(err, true)
		}
		if tresp.Succeeded {
			workload.ReportRevision(ctx, tresp.Header.Revision)
			return nil
		}
		if err := ctx.Err(); err != nil {
			// The last Txn's compare failed: nothing was applied.
			return workload.Definite(fmt.Errorf("append: gave up after %d conflicting attempts: %w", attempt, err))
		}
		if len(tresp.Responses) != 1 || tresp.Responses[0].GetResponseRange() == nil {
			return workload.Definite(fmt.Errorf("append: unexpected Else response %v", tresp.Responses))
		}
		kvs = tresp.Responses[0].GetResponseRange().Kvs
	}
}

// ReadList gets key's list; an absent key or empty value is the empty list. Any error is
// definite.
func (c *Client) ReadList(ctx context.Context, key string) ([]string, error) {
	ctx, cancel := c.opCtx(ctx, !c.cfg.Serializable)
	defer cancel()
	resp, err := c.cli.Get(ctx, key, c.readOpts()...)
	if err != nil {
		return nil, Classify(err, false)
	}
	workload.ReportRevision(ctx, resp.Header.Revision)
	if len(resp.Kvs) == 0 {
		return []string{}, nil
	}
	l, err := decodeList(resp.Kvs[0].Value)
	if err != nil {
		return nil, workload.Definite(fmt.Errorf("read list %q: %w", key, err))
	}
	return l, nil
}

var _ workload.Transactor = (*Client)(nil)

// Txn runs a list-append transaction as Jepsen's etcd test does: one Txn reads every
// key it touches (a linearizable read, unless Serializable, at one revision); the
// micro-operations are applied to those lists; if any appended, a second Txn writes the
// new lists guarded on every key's mod revision (create revision 0 for an absent key),
// so that it commits only if no key changed since the read, and the whole transaction
// takes effect atomically at its revision. A failed guard wrote nothing: a definite
// "conflict". The read's error is definite; the write's is classified as a mutation's.
func (c *Client) Txn(ctx context.Context, mops []history.Mop) ([]history.Mop, error) {
	ctx, cancel := c.opCtx(ctx, !c.cfg.Serializable)
	defer cancel()
	var keys []string
	for _, m := range mops {
		if !slices.Contains(keys, m.Key) {
			keys = append(keys, m.Key)
		}
	}
	gets := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		gets[i] = clientv3.OpGet(k, c.readOpts()...)
	}
	resp, err := c.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, Classify(err, false)
	}
	lists := map[string][]string{}
	cmps := make([]clientv3.Cmp, len(keys))
	for i, k := range keys {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			l, err := decodeList(kvs[0].Value)
			if err != nil {
				return nil, workload.Definite(fmt.Errorf("txn: key %q: %w", k, err))
			}
			lists[k] = l
			cmps[i] = clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision)
		}
	}
	written := map[string]bool{}
	out := workload.ApplyMops(mops, func(k string) []string { return lists[k] }, func(k string, l []string) {
		lists[k], written[k] = l, true
	})
	if len(written) == 0 {
		return out, nil
	}
	var puts []clientv3.Op
	for _, k := range keys {
		if written[k] {
			enc, err := json.Marshal(lists[k])
			if err != nil {
				return nil, workload.Definite(fmt.Errorf("txn: %w", err))
			}
			puts = append(puts, clientv3.OpPut(k, string(enc)))
		}
	}
	wctx, wcancel := c.opCtx(ctx, true)
	defer wcancel()
	tresp, err := c.cli.Txn(wctx).If(cmps...).Then(puts...).Commit()
	if err != nil {
		return nil, Classify(err, true)
	}
	if !tresp.Succeeded {
		return nil, workload.Definite(errors.New("conflict: a key changed since the transaction read it"))
	}
	return out, nil
}

var _ workload.Leaser = (*Client)(nil)

// Grant creates a lease of ttl (whole seconds) through raft: a mutation, classified as
// one. The id is the server's, in hex.
func (c *Client) Grant(ctx context.Context, ttl time.Duration) (string, time.Duration, error) {
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	resp, err := c.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return "", 0, Classify(err, true)
	}
	if resp.Error != "" {
		return "", 0, workload.Definite(fmt.Errorf("grant: %s", resp.Error))
	}
	return strconv.FormatInt(int64(resp.ID), 16), time.Duration(resp.TTL) * time.Second, nil
}

// PutWithLease puts value at key attached to lease. etcd answers "requested lease not
// found" from applying the put, which then changed nothing: workload.ErrLeaseNotFound.
func (c *Client) PutWithLease(ctx context.Context, key, value, lease string) error {
	id, err := leaseID(lease)
	if err != nil {
		return err
	}
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	_, err = c.cli.Put(ctx, key, value, clientv3.WithLease(id))
	return leaseError(err)
}

// KeepAlive renews lease once: one request on a LeaseKeepAlive stream, as clientv3's
// KeepAliveOnce sends, but without its loop, which retries an unavailable member at
// once and without end until ctx does. The member forwards the renewal to its leader,
// whose lessor renews the lease without raft; a TTL of 0 in the answer is etcd's "no
// such lease": workload.ErrLeaseNotFound. Any other error is indeterminate: the renewal
// may have been made.
func (c *Client) KeepAlive(ctx context.Context, lease string) (time.Duration, error) {
	id, err := leaseID(lease)
	if err != nil {
		return 0, err
	}
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	stream, err := pb.NewLeaseClient(c.cli.ActiveConnection()).LeaseKeepAlive(ctx)
	if err != nil {
		return 0, leaseError(err)
	}
	defer func() { _ = stream.CloseSend() }()
	if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)}); err != nil {
		return 0, leaseError(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return 0, leaseError(err)
	}
	if resp.TTL <= 0 {
		return 0, workload.ErrLeaseNotFound
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// Revoke ends lease through raft, deleting its keys; "requested lease not found" comes
// from applying it (nothing to revoke): workload.ErrLeaseNotFound.
func (c *Client) Revoke(ctx context.Context, lease string) error {
	id, err := leaseID(lease)
	if err != nil {
		return err
	}
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	_, err = c.cli.Revoke(ctx, id)
	return leaseError(err)
}

// leaseID parses a lease id as Grant renders it.
func leaseID(lease string) (clientv3.LeaseID, error) {
	id, err := strconv.ParseInt(lease, 16, 64)
	if err != nil {
		return 0, workload.Definite(fmt.Errorf("lease id %q: %w", lease, err))
	}
	return clientv3.LeaseID(id), nil
}

// leaseError is Classify of a mutation's error, with etcd's "requested lease not found"
// made workload.ErrLeaseNotFound.
func leaseError(err error) error {
	if err == nil {
		return nil
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) && ee.Error() == rpctypes.ErrLeaseNotFound.Error() {
		return workload.ErrLeaseNotFound
	}
	if st, ok := grpcstatus.FromError(err); ok && st.Message() == rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaseNotFound) {
		return workload.ErrLeaseNotFound
	}
	return Classify(err, true)
}

// decodeList decodes a list value: a JSON array of strings; empty is the empty list.
func decodeList(b []byte) ([]string, error) {
	l := []string{}
	if len(b) == 0 {
		return l, nil
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("value is not a list (a JSON array of strings): %w", err)
	}
	return l, nil
}

// rejectedBeforeRaft are the descriptions of the errors that etcd's server returns for a
// Put or Txn only before the request is proposed to raft, or that raft returns when it
// dropped the proposal without appending or forwarding it. Sources (server v3.7.3; the
// same code paths in v3.5.35 and v3.6.16, and in 3.4's etcdserver/v3_server.go):
//
//   - etcdserver/api/v3rpc/interceptor.go, newUnaryInterceptor, before handler(ctx, req):
//     "no leader" (the require-leader check; for Put/Txn nothing else returns it:
//     waitLeader, the other source of ErrNoLeader, serves only lease and leader RPCs),
//     "not capable", "rpc not supported for learner", "invalid client api version".
//   - etcdserver/api/v3rpc/key.go, kvServer.Put/Txn: checkPutRequest, checkTxnRequest and
//     checkIntervals run before s.kv.Put/Txn: "key is not provided", "value is provided",
//     "lease is provided", "too many operations in txn request", "duplicate key given in
//     txn request".
//   - etcdserver/v3_server.go, processInternalRaftRequestOnce, before s.r.Propose:
//     "too many requests" (exceedsRequestLimit), "request is too large".
//   - the same function, s.r.Propose returning raft.ErrProposalDropped (not in
//     v3rpc/util.go's toGRPCErrorMap, so it arrives as codes.Unknown "raft proposal
//     dropped"): raft's stepLeader/stepCandidate/stepFollower return it only without
//     appending the entry (appendEntry refuses before raftLog.append) or forwarding it.
//
// Deliberately NOT here: "mvcc: database space exceeded" (NOSPACE). v3rpc/quota.go
// rejects with it before raft, but etcdserver/apply/quota.go, quotaApplierV3.Put/Txn,
// returns it AFTER applying the write, and the two cannot be told apart. Nor "request
// timed out" (and its variants), "leader changed", "server stopped", "request cancelled",
// context errors, or any Unavailable from the transport: those come after the proposal
// may have been made. Auth errors are left out: faultline runs etcd without auth.
var rejectedBeforeRaft = map[string]bool{
	rpctypes.ErrorDesc(rpctypes.ErrGRPCNoLeader):                true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCNotCapable):              true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCNotSupportedForLearner):  true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCInvalidClientAPIVersion): true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCEmptyKey):                true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCValueProvided):           true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCLeaseProvided):           true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCTooManyOps):              true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCDuplicateKey):            true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooManyRequests):  true,
	rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooLarge):         true,
}

// errProposalDropped is raft.ErrProposalDropped's text, as etcd sends it (codes.Unknown).
const errProposalDropped = "raft proposal dropped"

// Classify turns the error of one clientv3 call into the workload's: nil stays nil; a
// read's error (mutation false) is always definite; a mutation's is definite only if
// etcd rejected it before raft (rejectedBeforeRaft, errProposalDropped), else it is
// returned as is, indeterminate.
func Classify(err error, mutation bool) error {
	if err == nil {
		return nil
	}
	if !mutation || definiteMutationError(err) {
		return workload.Definite(err)
	}
	return err
}

// definiteMutationError reports whether a Put/Txn error proves the request was not and
// will not be applied.
func definiteMutationError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	// clientv3 returns server errors as rpctypes.EtcdError (Error() is the description)
	// or, when it does not know them, as the gRPC status.
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return rejectedBeforeRaft[ee.Error()]
	}
	st, ok := grpcstatus.FromError(err)
	if !ok {
		return false
	}
	if st.Code() == codes.Unknown && st.Message() == errProposalDropped {
		return true
	}
	// A server error clientv3 did not translate (e.g. "too many requests" arrives as
	// codes.Unknown with that description).
	return rejectedBeforeRaft[st.Message()]
}
