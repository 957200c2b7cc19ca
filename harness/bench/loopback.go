package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
)

// loopCluster runs a target's nodes as plain processes on loopback, each port of each
// node mapped to a free port: the commands are the target's own (sut.Node), so
// the node is the one the harness runs, without namespaces or faults between the
// clients and it — what a throughput comparison wants.
type loopCluster struct {
	dir   string
	names []string
	ports map[string]map[int]int
	procs []*exec.Cmd
}

// newLoopCluster picks the ports of n nodes for a target listening on ports.
func newLoopCluster(dir string, n int, ports []int) (*loopCluster, sut.Env, error) {
	c := &loopCluster{dir: dir, ports: map[string]map[int]int{}}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		c.names = append(c.names, name)
		c.ports[name] = map[int]int{}
		for _, p := range ports {
			free, err := freePort()
			if err != nil {
				return nil, sut.Env{}, err
			}
			c.ports[name][p] = free
		}
	}
	reach := func(node string, port int) string { return "127.0.0.1:" + strconv.Itoa(c.ports[node][port]) }
	env := sut.Env{Nodes: c.names, Reach: reach, PeerReach: reach, RunID: "bench", Dir: dir,
		Logf: func(string, ...any) {}}
	return c, env, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start launches every node and waits until the target says the cluster is ready.
func (c *loopCluster) start(ctx context.Context, t sut.Target) error {
	for _, n := range c.names {
		data := filepath.Join(c.dir, n, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return err
		}
		cmd := t.Node(runtime.NodeEnv{Name: n, DataDir: data,
			Bind: func(port int) string { return "127.0.0.1:" + strconv.Itoa(c.ports[n][port]) }})
		log, err := os.Create(filepath.Join(c.dir, n, "node.log"))
		if err != nil {
			return err
		}
		p := exec.Command(cmd.Program, cmd.Args...)
		p.Env = append(os.Environ(), cmd.Env...)
		p.Stdout, p.Stderr = log, log
		p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the bench
		if err := p.Start(); err != nil {
			log.Close()
			return fmt.Errorf("start %s: %w", n, err)
		}
		log.Close()
		c.procs = append(c.procs, p)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var last error
	for rctx.Err() == nil {
		if last = t.Ready(rctx); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cluster not ready in a minute: %w", errors.Join(last, rctx.Err()))
}

// stop kills every node and waits for it.
func (c *loopCluster) stop() {
	for _, p := range c.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	c.procs = nil
}
