package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// LogsOptions select what ContainerLogs returns.
type LogsOptions struct {
	Stdout, Stderr bool
	// Follow keeps the stream open while the container runs: it ends when the
	// container stops (or ctx is cancelled).
	Follow bool
	// Timestamps prefixes each line with its RFC 3339 (nanoseconds) time and a space.
	Timestamps bool
	// Since keeps only the lines logged after this unix time, "seconds[.nanoseconds]".
	Since string
}

// Media types of the logs stream (the daemon says which from API 1.42 on).
const (
	multiplexedStream = "application/vnd.docker.multiplexed-stream"
	rawStream         = "application/vnd.docker.raw-stream"
)

// Logs is an open stream of a container's output. Close it.
type Logs struct {
	body        io.ReadCloser
	multiplexed bool
}

// ContainerLogs opens the container's output (its log driver must be readable:
// json-file, local, journald). Of a container without a TTY, stdout and stderr come
// multiplexed in one stream, which Logs.CopyTo takes apart; of one with a TTY, as one
// raw stream. Which one it is comes from the response's media type, or, from a daemon
// older than API 1.42 that does not give it, from inspecting the container.
func (c *Client) ContainerLogs(ctx context.Context, container string, opts LogsOptions) (*Logs, error) {
	q := url.Values{}
	for k, on := range map[string]bool{"stdout": opts.Stdout, "stderr": opts.Stderr, "follow": opts.Follow, "timestamps": opts.Timestamps} {
		if on {
			q.Set(k, "1")
		}
	}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/containers/" + id(container) + "/logs", query: q})
	if err != nil {
		return nil, err
	}
	l := &Logs{body: resp.Body}
	switch ct := resp.Header.Get("Content-Type"); {
	case ct == multiplexedStream:
		l.multiplexed = true
	case ct == rawStream && !versionLess(c.APIVersion(), "1.42"):
		l.multiplexed = false
	default:
		info, err := c.ContainerInspect(ctx, container)
		if err != nil {
			resp.Body.Close()
			return nil, fmt.Errorf("docker logs of %s: has it a TTY? %w", container, err)
		}
		l.multiplexed = info.Config == nil || !info.Config.Tty
	}
	return l, nil
}

// Multiplexed reports whether the stream is stdout and stderr multiplexed (the
// container has no TTY).
func (l *Logs) Multiplexed() bool { return l.multiplexed }

// CopyTo copies the stream to its end: stdout's frames to stdout and stderr's to stderr
// when it is multiplexed, all of it to stdout when not. Its error is that of the read
// (wrapping ctx's error when ctx ended the stream) or of a write.
func (l *Logs) CopyTo(stdout, stderr io.Writer) error {
	if l.multiplexed {
		return Demux(stdout, stderr, l.body)
	}
	_, err := io.Copy(stdout, l.body)
	return err
}

// Close closes the stream.
func (l *Logs) Close() error { return l.body.Close() }

// Demux copies a multiplexed stream (frames of an 8-byte header: the stream, 1 stdout
// or 2 stderr (0 stdin, written to stdout), three zero bytes, the payload's length as a
// big-endian uint32; then the payload) from src to stdout and stderr, to src's end. A
// frame of stream 3 is the daemon's error, returned as one. A stream that ends within a
// frame is io.ErrUnexpectedEOF.
func Demux(stdout, stderr io.Writer, src io.Reader) error {
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		var dst io.Writer
		switch hdr[0] {
		case 0, 1:
			dst = stdout
		case 2:
			dst = stderr
		case 3:
			msg, err := io.ReadAll(io.LimitReader(src, n))
			if err != nil {
				return err
			}
			return fmt.Errorf("the daemon broke the stream: %s", msg)
		default:
			return fmt.Errorf("not a multiplexed stream: a frame of stream %d", hdr[0])
		}
		if w, err := io.CopyN(dst, src, n); err != nil {
			if errors.Is(err, io.EOF) && w < n {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
}
