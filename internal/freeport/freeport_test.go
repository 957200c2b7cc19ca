package freeport

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPortsAreFreeAndOutsideTheEphemeralRange(t *testing.T) {
	elo, ehi := ephemeral()
	for range 20 {
		ps, err := Ports(6)
		require.NoError(t, err)
		require.Len(t, ps, 6)
		for i, p := range ps {
			require.False(t, p >= elo && p <= ehi, "port %d in the ephemeral range %d-%d", p, elo, ehi)
			require.GreaterOrEqual(t, p, lowest)
			require.Equal(t, ps[0]+i, p)
		}
		// Free: each can be bound now.
		var ls []net.Listener
		for _, p := range ps {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			require.NoError(t, err)
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
	}
}

// A block with a port someone holds is not free.
func TestHeldPortMakesABlockTaken(t *testing.T) {
	p, err := Block(3)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
	require.NoError(t, err)
	defer l.Close()
	require.False(t, free(p, 3), "a block with a held port is free")
	require.False(t, free(p+1, 1), "a held port is free")
}
