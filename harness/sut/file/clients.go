package file

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/faultline/faultline/harness/internal/etcdclient"

	"github.com/faultline/faultline/node/client"
	"github.com/faultline/faultline/workload"
)

// The client protocols a target file may name (client.protocol): faultline's HTTP/JSON
// KV protocol (docs/protocol.md), the etcd v3 API (with the shared etcd client), or a
// JSON-lines shim over stdio.
const (
	protoHTTP = "http"
	protoKV   = "etcd"
	protoExec = "exec"
)

// Opener implements sut.Target: process p talks to node p mod N only, through the
// file's protocol, each operation bounded by opTimeout. With the exec protocol each
// process has a shim of its own, started here. Once the target has failed, it opens
// nothing more.
func (t *Target) Opener(opTimeout time.Duration) workload.Opener {
	return func(ctx context.Context, process int) (workload.Client, string, error) {
		node := t.names[process%len(t.names)]
		c, err := t.open(ctx, node, process, opTimeout)
		return c, node, err
	}
}

// open returns a client of node for process (-1: the harness's own writes).
func (t *Target) open(ctx context.Context, node string, process int, opTimeout time.Duration) (workload.Client, error) {
	if err := t.Failure(); err != nil {
		return nil, err
	}
	addr := ""
	if t.f.Client.Port != "" {
		addr = t.env.Reach(node, t.f.Ports[t.f.Client.Port])
	}
	switch t.f.Client.Protocol {
	case protoHTTP:
		hc := &http.Client{Timeout: opTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		return httpClient{client.New("http://"+addr, hc)}, nil
	case protoKV:
		return etcdclient.New(ctx, etcdclient.Config{Endpoint: addr, OpTimeout: opTimeout})
	}
	return t.startShim(ctx, node, process)
}

func closeClient(c workload.Client) error {
	if cl, ok := c.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// httpClient is workload.Client over faultline's http protocol (docs/protocol.md), whose
// reference client is node/client: its errors already say whether they are definite.
type httpClient struct{ c *client.Client }

func (h httpClient) Read(ctx context.Context, key string) (string, bool, error) {
	return h.c.Get(ctx, key)
}

func (h httpClient) Write(ctx context.Context, key, value string) error {
	return h.c.Put(ctx, key, value)
}

func (h httpClient) CAS(ctx context.Context, key, from, to string) error {
	if err := h.c.CAS(ctx, key, from, to); errors.Is(err, client.ErrCASMismatch) {
		return workload.ErrMismatch
	} else {
		return err
	}
}

func (h httpClient) Append(ctx context.Context, key, value string) error {
	return h.c.Append(ctx, key, value)
}

func (h httpClient) ReadList(ctx context.Context, key string) ([]string, error) {
	return h.c.List(ctx, key)
}
