package linkproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The pumps of a StreamProxy's connections: see StreamProxy for the model.

// streamConn is one proxied connection: client (accepted) and server (dialled), the
// pump client→server (up) and the pump server→client (down).
type streamConn struct {
	client, server net.Conn
	up, down       *pump
	done           chan struct{} // closed by abort
	once           sync.Once
}

// run pumps both directions until both have ended or abort, then closes both sides.
func (c *streamConn) run() {
	var wg sync.WaitGroup
	var writers atomic.Int32
	writers.Store(2)
	pumpOne := func(pp *pump, src, dst net.Conn) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			pp.read(src, c.abort)
		}()
		go func() {
			defer wg.Done()
			// A failed direction tears the connection down; so does the end of the second.
			if !pp.write(dst, c.done) || writers.Add(-1) == 0 {
				c.abort()
			}
		}()
	}
	pumpOne(c.up, c.client, c.server)
	pumpOne(c.down, c.server, c.client)
	wg.Wait()
	c.abort()
	c.up.finish()
	c.down.finish()
}

// abort closes both sides and stops both pumps; idempotent.
func (c *streamConn) abort() {
	c.once.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
		c.up.kill()
		c.down.kill()
	})
}

// pump carries one direction of one connection over link.
type pump struct {
	link *streamLink
	rng  *rand.Rand // jitter draws; used by the writer only

	mu   sync.Mutex
	cond sync.Cond // on mu: a chunk was queued, room was made, or the pump was killed
	q    []chunk
	held int  // bytes queued or being released
	dead bool // the connection was torn down
}

// chunk is what one read returned, stamped with when it arrived; eof marks the end of
// the stream (the sender half-closed).
type chunk struct {
	data []byte
	at   time.Time
	eof  bool
}

// read queues what arrives from src, stamped, until the end of the stream; it waits
// while the pump holds streamMaxHeld bytes. An error other than the end of the stream
// tears the connection down.
func (pp *pump) read(src net.Conn, abort func()) {
	buf := make([]byte, streamChunk)
	for {
		pp.mu.Lock()
		for pp.held >= streamMaxHeld && !pp.dead {
			pp.cond.Wait()
		}
		dead := pp.dead
		pp.mu.Unlock()
		if dead {
			return
		}
		n, err := src.Read(buf)
		now := time.Now()
		if n > 0 {
			pp.link.held.Add(int64(n))
			pp.push(chunk{data: bytes.Clone(buf[:n]), at: now}, n)
		}
		if errors.Is(err, io.EOF) {
			pp.push(chunk{at: now, eof: true}, 0)
			return
		}
		if err != nil {
			abort()
			return
		}
	}
}

func (pp *pump) push(c chunk, n int) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.q = append(pp.q, c)
	pp.held += n
	pp.cond.Broadcast()
}

// write releases the queued chunks to dst in order, each when the link's faults allow,
// and passes the end of the stream on with CloseWrite. It reports whether it got there;
// on an error it tears the connection down.
func (pp *pump) write(dst net.Conn, done <-chan struct{}) bool {
	for {
		pp.mu.Lock()
		for len(pp.q) == 0 && !pp.dead {
			pp.cond.Wait()
		}
		if pp.dead {
			pp.mu.Unlock()
			return false
		}
		c := pp.q[0]
		pp.q[0] = chunk{}
		pp.q = pp.q[1:]
		pp.mu.Unlock()

		if !pp.release(c, dst, done) {
			return false
		}
		if c.eof {
			cw, ok := dst.(interface{ CloseWrite() error })
			return ok && cw.CloseWrite() == nil
		}
	}
}

// release writes c to dst once the link's faults allow: not while it is a Blackhole, not
// before c's arrival plus Delay ± Jitter, and no faster than its Rate. It re-reads the
// faults whenever they change. It reports false if a write failed or the connection was
// torn down.
func (pp *pump) release(c chunk, dst net.Conn, done <-chan struct{}) bool {
	u := pp.rng.Float64()*2 - 1
	data := c.data
	for {
		f, changed := pp.link.state()
		wait := time.Duration(-1) // until the faults change
		if !f.Blackhole {
			wait = time.Until(c.at.Add(f.delay(u)))
			if wait <= 0 {
				if len(data) == 0 {
					return true
				}
				var n int
				n, wait = pp.link.take(len(data), time.Now())
				if n > 0 {
					if _, err := dst.Write(data[:n]); err != nil {
						return false
					}
					data = data[n:]
					pp.delivered(n)
					continue
				}
			}
		}
		if !sleep(wait, changed, done) {
			return false
		}
	}
}

// delivered accounts for n bytes written.
func (pp *pump) delivered(n int) {
	pp.link.bytes.Add(uint64(n))
	pp.link.held.Add(-int64(n))
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.held -= n
	pp.cond.Broadcast()
}

// kill stops the pump: its reader and writer return.
func (pp *pump) kill() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.dead = true
	pp.cond.Broadcast()
}

// finish gives back the bytes a dead pump still held to its link's count. It runs once
// the pump's reader and writer have returned.
func (pp *pump) finish() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.link.held.Add(-int64(pp.held))
	pp.held, pp.q = 0, nil
}

// sleep waits d (forever if d < 0) or until changed is closed; false if done is closed.
func sleep(d time.Duration, changed, done <-chan struct{}) bool {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return true
	case <-changed:
		return true
	case <-done:
		return false
	}
}
