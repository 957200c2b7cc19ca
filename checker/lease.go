package checker

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/faultline/faultline/history"
)

// LeaseDrift is the share of a TTL by which the lease checker lets a lease end early.
// A server measures a lease's TTL on its own clock (etcd: the leader's monotonic
// clock), so a TTL is a lower bound on the lease's life in real time only as far as
// that clock keeps the rate of real time: etcd, like every lease-based system, assumes
// bounded clock drift. 1% is twenty times the 500 ppm that NTP allows a clock to
// drift: a lease that ends earlier than that was ended by a clock far off its rate, a
// clock that jumped, or a bug.
const LeaseDrift = 0.01

// LeaseResult is the lease checker's result. Each key of the lease workload is put
// once, attached to a lease of its own; the lease was alive at every moment up to the
// latest (invoke + TTL·(1−LeaseDrift)) of its acknowledged grant and keepalives (the
// server renewed it after the invoke, and a lease never comes back), and the key
// exists while the lease does. So, unless a revoke of the lease was invoked first, a
// read that began after the put was known done and ended before that time must find
// the key, and no keepalive, put or revoke ending before it may be told the lease is
// not found.
type LeaseResult struct {
	Verdict Verdict `json:"valid"`
	// Leases counts the leases granted (acknowledged); Attached the keys known put.
	Leases   int `json:"leases"`
	Attached int `json:"attached"`
	// Guarded counts the acknowledged reads that fell within their lease's guaranteed
	// life: each could have caught an early end. Without any, the check proved nothing.
	Guarded int `json:"guarded_reads"`
	// Early counts keys found deleted, or leases found gone, before the lease's
	// guaranteed end; EarliestMS is how long before it the worst one was (ms).
	Early      int     `json:"early"`
	EarliestMS float64 `json:"earliest_ms,omitempty"`
	// EarlyClocked counts those of Early while a clock fault was on a leader of the time:
	// what a lease-based system's clock assumption lets happen.
	EarlyClocked int `json:"early_clocked"`
	// Expired counts the keys seen gone, without a revoke, after their lease's
	// guaranteed life: leases that did expire, as they may.
	Expired int `json:"expired"`
	// Revived counts reads that found a key after its lease's revoke was acknowledged.
	Revived int `json:"revived"`
	// Unexpected counts reads of a value no put of the key wrote.
	Unexpected int `json:"unexpected"`
	// Ignored counts operations of another shape than the workload's; any makes the
	// verdict unknown rather than valid.
	Ignored   int      `json:"ignored"`
	Anomalies []string `json:"anomalies,omitempty"`
}

// Line is the result in one line, for summaries and reports.
func (r *LeaseResult) Line() string {
	s := fmt.Sprintf("%d leases, %d keys attached, %d reads within a lease's guaranteed life, %d expired after it, %d ended early",
		r.Leases, r.Attached, r.Guarded, r.Expired, r.Early)
	if r.Early > 0 {
		s += fmt.Sprintf(" (the earliest %.0fms early; %d while the leader's clock was faulted)", r.EarliestMS, r.EarlyClocked)
	}
	s += fmt.Sprintf(", %d read after revoke, %d unexpected values", r.Revived, r.Unexpected)
	if r.Ignored > 0 {
		s += fmt.Sprintf(", %d malformed ignored", r.Ignored)
	}
	return s
}

func (r *LeaseResult) anomaly(format string, args ...any) {
	if len(r.Anomalies) < 20 {
		r.Anomalies = append(r.Anomalies, fmt.Sprintf(format, args...))
	}
}

// leaseLife is what the history says of one lease.
type leaseLife struct {
	id       string
	renewals []*op // acknowledged grants and keepalives: out [lease, ttl]
	revokes  []*op // revokes that may have taken effect (ok or indeterminate)
	gone     []*op // operations told the lease is not found
}

// until is the latest time the renewals guarantee the lease alive to, and the renewal
// that does (nil: none).
func (l *leaseLife) until() (int64, *op) {
	best, by := int64(-1), (*op)(nil)
	for _, r := range l.renewals {
		ttl, _ := strconv.Atoi(r.out.L[1])
		if t := r.call + int64(float64(ttl)*1e9*(1-LeaseDrift)); t > best {
			best, by = t, r
		}
	}
	return best, by
}

// since is when the lease is first known alive: the earliest end of a renewal.
func (l *leaseLife) since() int64 {
	t := int64(openEnd)
	for _, r := range l.renewals {
		t = min(t, r.ret)
	}
	return t
}

// revokedBy is the earliest invoke of a revoke that may have ended the lease (none:
// the largest time).
func (l *leaseLife) revokedBy() int64 {
	t := int64(openEnd)
	for _, r := range l.revokes {
		t = min(t, r.call)
	}
	return t
}

// checkLease checks the lease workload's history (see LeaseResult). Operations it
// cannot interpret are noted and counted in bad.
func checkLease(ops []op, nemesis []history.Event, untimed bool, bad *ignoredOps) (res *LeaseResult, notes []string) {
	res = &LeaseResult{}
	if untimed {
		res.Verdict = Unknown
		return res, nil
	}
	leases := map[string]*leaseLife{}
	life := func(id string) *leaseLife {
		if leases[id] == nil {
			leases[id] = &leaseLife{id: id}
		}
		return leases[id]
	}
	puts := map[string][]*op{}  // by key
	reads := map[string][]*op{} // by key: acknowledged
	var keys []string
	for i := range ops {
		o := &ops[i]
		shaped := true
		switch {
		case o.guessed != "":
			continue // counted by the pairing
		case o.status == history.Fail && o.err == history.LeaseNotFound && leaseArg(o) != "":
			life(leaseArg(o)).gone = append(life(leaseArg(o)).gone, o)
		case o.status == history.Fail:
		case o.f == history.OpGrant:
			if o.status == history.OK {
				shaped = pair(o.out) && o.out.L[0] != ""
				if shaped {
					life(o.out.L[0]).renewals = append(life(o.out.L[0]).renewals, o)
					res.Leases++
				}
			}
		case o.f == history.OpKeepAlive:
			if o.status == history.OK {
				shaped = pair(o.out)
				if shaped {
					life(o.out.L[0]).renewals = append(life(o.out.L[0]).renewals, o)
				}
			}
		case o.f == history.OpRevoke:
			shaped = o.in.Kind == history.Str
			if shaped {
				life(o.in.S).revokes = append(life(o.in.S).revokes, o)
			}
		case o.f == history.OpPut:
			shaped = o.in.Kind == history.List && len(o.in.L) == 2
			if shaped {
				if len(puts[o.key]) == 0 {
					keys = append(keys, o.key)
				}
				puts[o.key] = append(puts[o.key], o)
			}
		case o.f == history.OpRead:
			shaped = o.out.Kind != history.List
			if shaped && o.status == history.OK {
				reads[o.key] = append(reads[o.key], o)
			}
		default:
			shaped = false
		}
		if !shaped {
			bad.add(o.key, whyShape)
			res.Ignored++
			notes = append(notes, fmt.Sprintf("event %d: %s of %v → %v on key %q is not of the lease workload's shape; ignored", o.invIdx, o.f, o.in, o.out, o.key))
		}
	}
	ctx := leaseContext{windows: faultWindows(nemesis), nemesis: nemesis}
	verdict := Valid
	for _, k := range keys {
		verdict = Compose(verdict, checkLeaseKey(res, k, puts[k], reads[k], leases, ctx))
	}
	ids := make([]string, 0, len(leases))
	for id := range leases {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		verdict = Compose(verdict, checkGone(res, leases[id], ctx))
	}
	if verdict == Valid && res.Guarded == 0 {
		verdict = Unknown // nothing that could have caught an early end
	}
	res.Verdict = verdict
	return res, notes
}

// leaseUnknown says why a lease check that found nothing wrong proved nothing either.
func leaseUnknown(untimed bool) string {
	if untimed {
		return "the history has no times: a lease's life cannot be measured"
	}
	return "no acknowledged read fell within its lease's guaranteed life: none could have caught an early end"
}

// leaseArg is the lease an operation names in its argument: a put's second value, a
// keepalive's or revoke's only one.
func leaseArg(o *op) string {
	switch {
	case o.f == history.OpPut && o.in.Kind == history.List && len(o.in.L) == 2:
		return o.in.L[1]
	case (o.f == history.OpKeepAlive || o.f == history.OpRevoke) && o.in.Kind == history.Str:
		return o.in.S
	}
	return ""
}

// pair reports whether v is [lease, ttl] with a whole ttl.
func pair(v history.Value) bool {
	if v.Kind != history.List || len(v.L) != 2 {
		return false
	}
	_, err := strconv.Atoi(v.L[1])
	return err == nil
}

// checkLeaseKey holds the reads of one key to its lease's life.
func checkLeaseKey(res *LeaseResult, key string, puts, reads []*op, leases map[string]*leaseLife, ctx leaseContext) Verdict {
	values := map[string]bool{}
	known, lease := int64(openEnd), ""
	for _, p := range puts {
		values[p.in.L[0]] = true
		if lease == "" {
			lease = p.in.L[1]
		}
		if p.status == history.OK {
			known = min(known, p.ret)
		}
	}
	for _, r := range reads { // a read that found the value saw the put done
		if r.out.Kind == history.Str && values[r.out.S] {
			known = min(known, r.ret)
		}
	}
	l := leases[lease]
	if l == nil {
		l = &leaseLife{id: lease}
	}
	if known < openEnd {
		res.Attached++
	}
	until, by := l.until()
	revoked := l.revokedBy()
	var revokeAcked int64 = openEnd
	for _, r := range l.revokes {
		if r.status == history.OK {
			revokeAcked = min(revokeAcked, r.ret)
		}
	}
	verdict := Valid
	expired := false
	for _, r := range reads {
		switch {
		case r.out.Kind == history.Str && !values[r.out.S]:
			res.Unexpected++
			res.anomaly("key %q: %s returned %q, which no put of the key wrote", key, r.describe(), r.out.S)
			verdict = Invalid
		case r.out.Kind == history.Str && r.call > revokeAcked:
			res.Revived++
			res.anomaly("key %q: %s found the key, although the revoke of its lease %s was acknowledged at %s, before the read began",
				key, r.describe(), lease, secs(revokeAcked))
			verdict = Invalid
		}
		if r.call <= known || r.ret >= until || r.ret >= revoked {
			expired = expired || r.out.Kind == history.None && r.call > known && r.call >= until && r.ret < revoked
			continue // not within the lease's guaranteed life
		}
		res.Guarded++
		if r.out.Kind == history.None {
			verdict = Invalid
			why, clocked := ctx.during(by.call, r.ret)
			res.early(until-r.ret, clocked)
			res.anomaly("key %q deleted early: %s found it absent, although it was put (known done at %s) with lease %s, which %s guaranteed alive until %s — %s before that, and no revoke was invoked. %s",
				key, r.describe(), secs(known), lease, renewal(by), secs(until), millis(until-r.ret), why)
		}
	}
	if expired {
		res.Expired++
	}
	return verdict
}

// checkGone holds every "lease not found" to the lease's guaranteed life.
func checkGone(res *LeaseResult, l *leaseLife, ctx leaseContext) Verdict {
	until, by := l.until()
	revoked, since := l.revokedBy(), l.since()
	verdict := Valid
	for _, g := range l.gone {
		if g.call < since || g.done >= until || g.done >= revoked {
			continue
		}
		verdict = Invalid
		why, clocked := ctx.during(by.call, g.done)
		res.early(until-g.done, clocked)
		res.anomaly("lease %s ended early: %s was told it was not found, although %s guaranteed it alive until %s — %s before that, and no revoke was invoked. %s",
			l.id, g.describeFail(), renewal(by), secs(until), millis(until-g.done), why)
	}
	return verdict
}

func (r *LeaseResult) early(by int64, clocked bool) {
	r.Early++
	if clocked {
		r.EarlyClocked++
	}
	r.EarliestMS = max(r.EarliestMS, float64(by)/1e6)
}

// describeFail is describe for a failed operation, which ended when its failure came.
func (o *op) describeFail() string {
	s := fmt.Sprintf("%s by process %d at %s–%s", o.f, o.process, secs(o.call), secs(o.done))
	if o.node != "" {
		s += " on " + o.node
	}
	return s
}

// renewal says which renewal guaranteed a lease how long.
func renewal(by *op) string {
	return fmt.Sprintf("the %s invoked at %s (TTL %ss)", by.f, secs(by.call), by.out.L[1])
}

func millis(ns int64) string { return fmt.Sprintf("%.0fms", float64(ns)/1e6) }

// leaseContext is what the nemesis did, to say what was going on when a lease ended early.
type leaseContext struct {
	windows []window
	nemesis []history.Event
}

// during names the faults in force and the leaders seen from from to to: a lease ends on
// its leader's clock, so the clock faults of the leader are the first suspects.
func (c leaseContext) during(from, to int64) (string, bool) {
	var leaders []string
	for _, e := range c.nemesis {
		if e.F != history.LeaderChange || e.Node == "" || e.Time > to {
			continue
		}
		if e.Time < from {
			leaders = leaders[:0] // only the last one before from counts
		}
		if !slices.Contains(leaders, e.Node) {
			leaders = append(leaders, e.Node)
		}
	}
	var faults, clocked []string
	for _, w := range c.windows {
		if w.start > to || w.end < from {
			continue
		}
		faults = append(faults, w.String())
		if strings.Contains(w.fault, "clock") {
			for _, n := range strings.Split(w.nodes, ",") {
				if slices.Contains(leaders, n) && !slices.Contains(clocked, n) {
					clocked = append(clocked, n)
				}
			}
		}
	}
	var parts []string
	if len(faults) > 0 {
		parts = append(parts, "Faults in force meanwhile: "+strings.Join(faults, "; ")+".")
	} else {
		parts = append(parts, "No fault was in force meanwhile.")
	}
	if len(leaders) > 0 {
		parts = append(parts, "Leader meanwhile: "+strings.Join(leaders, ", ")+".")
	}
	switch {
	case len(clocked) > 0:
		parts = append(parts, fmt.Sprintf("A lease's TTL runs on its leader's clock, and the clock of %s was faulted: "+
			"lease-based systems assume clocks that keep real time's rate, so this is what that clock fault does to them, "+
			"not by itself a bug in the lease logic.", strings.Join(clocked, ", ")))
	case len(leaders) > 0:
		parts = append(parts, "No clock fault touched the leader: clocks do not explain this.")
	}
	return strings.Join(parts, " "), len(clocked) > 0
}
