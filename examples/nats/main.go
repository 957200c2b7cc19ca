// nats-kv-shim is a faultline exec-protocol shim for a key-value bucket of NATS
// JetStream (docs/protocol.md), and the two hooks examples/nats.yaml calls:
//
//	nats-kv-shim serve  --server nats://HOST:PORT [--op-timeout-ms N]   (the shim)
//	nats-kv-shim setup  --server nats://HOST:PORT --replicas R          (hooks.setup)
//	nats-kv-shim leader --server nats://HOST:PORT --monitor HOST:PORT   (hooks.leader)
//
// The bucket is "faultline", made once by setup with R replicas on file storage:
// JetStream keeps it as the stream KV_faultline, replicated by its own Raft group, one
// subject $KV.faultline.<key> a key.
//
// Reads go to the stream's leader (the JetStream API's STREAM.MSG.GET, "last message
// of the key's subject"), never to a replica's direct get: nats.go makes buckets with
// direct gets allowed, and a direct get may be answered by a replica that is behind.
// Writes are publishes of the key's subject, acknowledged once the stream's Raft group
// has them; cas reads the key at the leader, then writes guarded on the sequence it
// read (Nats-Expected-Last-Subject-Sequence), which JetStream refuses when another
// write came between.
//
// The shim never makes the bucket. When JetStream says the bucket's stream does not
// exist, it did once (setup made it, nothing deletes it): the store has lost it with
// every key in it, and a read answers that the key holds nothing.
//
// Outcomes: a read's error is "fail" (a read changes nothing). A write's error is
// "fail" only when the write cannot have reached the stream: it was never sent (the
// connection was down: nats.go buffers nothing here), nobody took it (no responders),
// or JetStream refused it by its sequence guard. A timeout, above all, is "info".
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
)

const bucket = "faultline"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nats-kv-shim serve|setup|leader --server nats://HOST:PORT [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	server := fs.String("server", "", "the one server to talk to: nats://host:port")
	opTimeoutMS := fs.Int("op-timeout-ms", 2000, "faultline's op timeout; the shim gives up at 80% of it")
	monitor := fs.String("monitor", "", "leader: the server's monitoring host:port, for the meta leader before the bucket exists")
	replicas := fs.Int("replicas", 3, "setup: the bucket's replicas")
	_ = fs.Parse(os.Args[2:])
	if *server == "" {
		fmt.Fprintln(os.Stderr, "nats-kv-shim: --server is required")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(*server, time.Duration(*opTimeoutMS)*time.Millisecond*8/10, os.Stdin, os.Stdout)
	case "setup":
		err = setup(*server, *replicas)
	case "leader":
		err = leader(*server, *monitor)
	default:
		err = fmt.Errorf("unknown command %q (serve, setup, leader)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats-kv-shim:", err)
		os.Exit(1)
	}
}

// connect talks to server alone: no other server the cluster gossips, so that every
// operation of a client process goes through its own node, as faultline attributes it.
func connect(server string, opts ...nats.Option) (*nats.Conn, nats.JetStreamContext, error) {
	opts = append([]nats.Option{nats.DontRandomize(), nats.IgnoreDiscoveredServers(),
		nats.Timeout(2 * time.Second), nats.Name("faultline")}, opts...)
	nc, err := nats.Connect(server, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", server, err)
	}
	js, err := nc.JetStream()
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// setup makes the bucket, or finds it made as asked.
func setup(server string, replicas int) error {
	nc, js, err := connect(server)
	if err != nil {
		return err
	}
	defer nc.Close()
	// JetStream's meta group may still be electing its leader, or not yet know every
	// server's JetStream ("no suitable peers for placement"): retry within the minute
	// faultline gives setup.
	deadline := time.Now().Add(50 * time.Second)
	for {
		_, err = js.CreateKeyValue(&nats.KeyValueConfig{Bucket: bucket, History: 1,
			Storage: nats.FileStorage, Replicas: replicas})
		if err == nil || time.Now().After(deadline) {
			break
		}
		fmt.Fprintln(os.Stderr, "nats-kv-shim: setup: retrying:", err)
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create bucket %s (R%d): %w", bucket, replicas, err)
	}
	fmt.Printf("bucket %s: R%d, file storage\n", bucket, replicas)
	return nil
}

// leader prints the name of the server that leads the bucket's stream (it serves every
// read and write of the bucket), or JetStream's meta leader before the bucket exists.
func leader(server, monitor string) error {
	nc, js, err := connect(server)
	if err != nil {
		return err
	}
	defer nc.Close()
	si, err := js.StreamInfo("KV_"+bucket, nats.MaxWait(time.Second))
	switch {
	case err == nil && si.Cluster != nil:
		fmt.Println(si.Cluster.Leader)
		return nil
	case err != nil && !errors.Is(err, nats.ErrStreamNotFound):
		return err
	}
	// No bucket yet: the meta leader, from the server's monitoring port.
	if monitor == "" {
		return errors.New("no bucket yet, and no --monitor to ask for the meta leader")
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + monitor + "/jsz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return fmt.Errorf("%s/jsz: %w", monitor, err)
	}
	if jsz.Meta != nil {
		fmt.Println(jsz.Meta.Leader)
	}
	return nil
}

type request struct {
	ID    int64   `json:"id"`
	F     string  `json:"f"`
	Key   string  `json:"key"`
	Value *string `json:"value"`
	From  *string `json:"from"`
	To    *string `json:"to"`
}

type answer struct {
	ID   int64  `json:"id"`
	Type string `json:"type"`
	// Value is a read's *string: a nil one is "value": null, a read of nothing. Unset
	// (other answers), it is left out.
	Value any    `json:"value,omitempty"`
	Error string `json:"error,omitempty"`
	Rev   uint64 `json:"rev,omitempty"`
}

// serve answers faultline's requests, one a line, until stdin closes.
func serve(server string, timeout time.Duration, in io.Reader, out io.Writer) error {
	// No reconnect buffer: a publish while the connection is down fails at once and is
	// known never to have been sent. Reconnects to the same server go on forever.
	nc, js, err := connect(server, nats.ReconnectBufSize(-1), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		return err
	}
	defer nc.Close()
	s := &shim{js: js, timeout: timeout}
	sc := bufio.NewScanner(in)
	w := bufio.NewWriter(out)
	for sc.Scan() {
		var r request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("request %q: %w", sc.Text(), err)
		}
		a := s.do(r)
		a.ID = r.ID
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		w.Write(append(b, '\n'))
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return sc.Err()
}

type shim struct {
	js      nats.JetStreamContext
	timeout time.Duration
}

func subject(key string) string { return "$KV." + bucket + "." + key }

func (s *shim) do(r request) answer {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	switch r.F {
	case "init":
		return answer{Type: "ok"}
	case "read":
		v, _, err := s.read(ctx, r.Key)
		if err != nil {
			return answer{Type: "fail", Error: err.Error()}
		}
		return answer{Type: "ok", Value: v}
	case "write":
		if r.Value == nil {
			return answer{Type: "fail", Error: "write without a value"}
		}
		return s.put(ctx, r.Key, *r.Value, 0, false)
	case "cas":
		if r.From == nil || r.To == nil {
			return answer{Type: "fail", Error: "cas without from and to"}
		}
		v, seq, err := s.read(ctx, r.Key)
		if err != nil {
			return answer{Type: "fail", Error: err.Error()}
		}
		if v == nil || *v != *r.From {
			return answer{Type: "fail", Error: "mismatch"}
		}
		return s.put(ctx, r.Key, *r.To, seq, true)
	}
	return answer{Type: "fail", Error: "unsupported operation " + r.F}
}

// read returns the key's value and the stream sequence that wrote it, from the
// stream's leader; nil when the key holds nothing, or the bucket no longer exists.
func (s *shim) read(ctx context.Context, key string) (*string, uint64, error) {
	m, err := s.js.GetLastMsg("KV_"+bucket, subject(key), nats.Context(ctx))
	switch {
	case errors.Is(err, nats.ErrMsgNotFound), errors.Is(err, nats.ErrStreamNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return nil, m.Sequence, nil
	}
	v := string(m.Data)
	return &v, m.Sequence, nil
}

// put publishes value to the key, guarded on its last sequence when guard is set.
func (s *shim) put(ctx context.Context, key, value string, last uint64, guard bool) answer {
	opts := []nats.PubOpt{nats.Context(ctx)}
	if guard {
		opts = append(opts, nats.ExpectLastSequencePerSubject(last))
	}
	ack, err := s.js.Publish(subject(key), []byte(value), opts...)
	if err == nil {
		return answer{Type: "ok", Rev: ack.Sequence}
	}
	var apiErr *nats.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == nats.JSErrCodeStreamWrongLastSequence:
		return answer{Type: "fail", Error: "mismatch"}
	case errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrNoStreamResponse):
		return answer{Type: "fail", Error: err.Error()}
	}
	return answer{Type: "info", Error: err.Error()}
}
