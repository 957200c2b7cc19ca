package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func definite(err error) bool {
	var d interface{ Definite() bool }
	return errors.As(err, &d) && d.Definite()
}

func TestErrors(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/kv/missing":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not found","definite":true}`))
		case "/kv/k/cas":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":"cas mismatch","definite":true}`))
		case "/kv/noleader":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"no leader known","definite":true}`))
		case "/kv/timeout":
			w.WriteHeader(http.StatusGatewayTimeout)
			_, _ = w.Write([]byte(`{"error":"proposal not applied in time","definite":false}`))
		case "/kv/hang":
			<-release
		case "/list/l":
			_, _ = w.Write([]byte(`{"values":null}`))
		default:
			_, _ = w.Write([]byte(`{"value":"v"}`))
		}
	}))
	defer srv.Close()
	defer close(release) // before Close, which waits for the hung handler
	ctx := context.Background()
	c := New(srv.URL, &http.Client{Timeout: 300 * time.Millisecond})

	v, ok, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "v", v)
	_, ok, err = c.Get(ctx, "missing")
	require.NoError(t, err, "not found is found=false, not an error")
	assert.False(t, ok)

	err = c.CAS(ctx, "k", "a", "b")
	assert.ErrorIs(t, err, ErrCASMismatch)
	assert.True(t, definite(err))

	err = c.Put(ctx, "noleader", "x")
	assert.True(t, definite(err))
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusServiceUnavailable, e.Status)
	assert.NotErrorIs(t, err, ErrCASMismatch)

	err = c.Put(ctx, "timeout", "x")
	require.Error(t, err)
	assert.False(t, definite(err))

	err = c.Put(ctx, "hang", "x")
	require.Error(t, err)
	assert.False(t, definite(err), "a request that was sent and timed out is indefinite")

	for _, bad := range []string{"", ".", ".."} {
		err = c.Put(ctx, bad, "x")
		assert.True(t, definite(err), "key %q: %v", bad, err)
	}

	l, err := c.List(ctx, "l")
	require.NoError(t, err)
	assert.Equal(t, []string{}, l)
}

func TestDialFailureIsDefinite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nobody listens there now: connection refused
	err = New("http://"+addr, nil).Put(context.Background(), "k", "v")
	require.Error(t, err)
	assert.True(t, definite(err), "the request never left: %v", err)
}
