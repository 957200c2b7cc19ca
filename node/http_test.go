package node_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An ok write is answered 200 with an empty body, so that a client closing the answer
// unread keeps its connection: Go's client closed it when the body ({}) was left unread,
// and a load generator that never reads write answers dialled once per write.
func TestWriteAnswerKeepsTheConnection(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3)
	c.waitLeader(20 * time.Second)
	var dials atomic.Int64
	d := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		}}}
	for id := uint64(1); id <= 3; id++ {
		base := "http://" + c.nodes[id].clientAddr
		for i, path := range []string{"/kv/a", "/kv/b", "/list/l", "/kv/a", "/list/l"} {
			method, body := http.MethodPut, fmt.Sprintf(`{"value":"%d"}`, i)
			if path == "/list/l" {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, base+path, bytes.NewBufferString(body))
			require.NoError(t, err)
			resp, err := hc.Do(req)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, int64(0), resp.ContentLength)
			resp.Body.Close() // unread
		}
		req, err := http.NewRequest(http.MethodPost, base+"/kv/a/cas", bytes.NewBufferString(`{"from":"3","to":"x"}`))
		require.NoError(t, err)
		resp, err := hc.Do(req)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		resp.Body.Close()
	}
	assert.Equal(t, int64(3), dials.Load(), "one connection per node")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, ok, err := c.client(1).Get(ctx, "a")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "x", v)
	l, err := c.client(2).List(ctx, "l")
	require.NoError(t, err)
	assert.Len(t, l, 6)
}
