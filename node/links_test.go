package node_test

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

// withLinks, as the first extra argument of newCluster, routes every peer link i→j
// through a proxy of its own, so that a test can cut links: a cut link swallows
// requests until the sender gives up, like a network that drops packets.
const withLinks = "<links>"

type link struct {
	addr string
	cut  atomic.Bool
	srv  *http.Server
}

func (c *cluster) startLinks() {
	c.links = map[[2]uint64]*link{}
	for from := range c.nodes {
		for to, p := range c.nodes {
			if from == to {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				c.tb.Fatal(err)
			}
			target := &url.URL{Scheme: "http", Host: p.peerAddr}
			lk := &link{addr: l.Addr().String()}
			rp := httputil.NewSingleHostReverseProxy(target)
			rp.ErrorLog = nil
			lk.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if lk.cut.Load() {
					<-r.Context().Done()
					return
				}
				rp.ServeHTTP(w, r)
			})}
			go func() { _ = lk.srv.Serve(l) }()
			c.links[[2]uint64{from, to}] = lk
			c.tb.Cleanup(func() { _ = lk.srv.Close() })
		}
	}
}

// isolate cuts (or, with cut false, heals) every link to and from id.
func (c *cluster) isolate(id uint64, cut bool) {
	for k, l := range c.links {
		if k[0] == id || k[1] == id {
			l.cut.Store(cut)
		}
	}
}
