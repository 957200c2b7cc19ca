// Package freeport picks loopback TCP ports for the servers the harness starts (nodes
// on the process runtime without namespaces, etcd's failpoint endpoints, test clusters).
//
// The ports are taken outside the kernel's ephemeral range. A port found by listening on
// port 0 is an ephemeral one: once closed, the kernel may give it to the next outgoing
// connection of any process, and the node that binds it a moment later fails with
// "address already in use" — seen with the test suite's clusters side by side. A port
// below the range is never given out that way; the only race left is with another
// program picking ports the same way, which the random start makes rare.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port handed out: below it are the well-known and registered
// services a machine may run.
const lowest = 10000

// Block returns p such that p, p+1, ..., p+n-1 were all free on 127.0.0.1 a moment ago,
// none of them in the ephemeral range.
func Block(n int) (int, error) {
	lo, hi := candidates(n)
	if hi < lo {
		return 0, fmt.Errorf("free ports: no room for %d ports outside the ephemeral range", n)
	}
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		if free(p, n) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("free ports: no %d free ports in a row in %d-%d", n, lo, hi+n-1)
}

// Ports returns n distinct ports, each free on 127.0.0.1 a moment ago, none of them in
// the ephemeral range (a block of n: see Block).
func Ports(n int) ([]int, error) {
	p, err := Block(n)
	if err != nil {
		return nil, err
	}
	out := make([]int, n)
	for i := range out {
		out[i] = p + i
	}
	return out, nil
}

// free reports whether p..p+n-1 can all be listened on.
func free(p, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+i))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}

// candidates is the range of first ports of a block of n: below the ephemeral range if
// there is room, else above it.
func candidates(n int) (lo, hi int) {
	elo, ehi := ephemeral()
	if elo-lowest >= n+1000 {
		return lowest, elo - n
	}
	return ehi + 1, 65536 - n
}

// ephemeral is the kernel's ephemeral port range (Linux's default where it cannot be
// read).
func ephemeral() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return lo, hi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return lo, hi
	}
	return l, h
}
