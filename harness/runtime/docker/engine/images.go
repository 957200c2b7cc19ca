package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// BuildOptions are the parameters of ImageBuild.
type BuildOptions struct {
	Tags        []string          // "repo:tag" names for the image
	Dockerfile  string            // its path in the context ("" is "Dockerfile")
	Remove      bool              // remove the intermediate containers of a successful build
	ForceRemove bool              // remove them whatever the outcome
	Labels      map[string]string // labels set on the image
	// Version is the builder: "1", the classic one (which needs no session), or ""
	// for the daemon's default.
	Version string
}

// ImageBuild builds an image from a build context (a tar holding the Dockerfile and
// the files it copies), reading the daemon's progress (JSON messages) to the end. The
// build fails when a message carries an error: its text, with the last lines of output
// before it, is the error. It returns the image's id when the daemon reports it ("" when
// not). The daemon pulls the base image if it has to: FROM scratch needs none.
func (c *Client) ImageBuild(ctx context.Context, buildContext io.Reader, opts BuildOptions) (string, error) {
	q := url.Values{}
	if len(opts.Tags) > 0 {
		q["t"] = opts.Tags
	}
	if opts.Dockerfile != "" {
		q.Set("dockerfile", opts.Dockerfile)
	}
	if opts.Remove {
		q.Set("rm", "1")
	} else {
		q.Set("rm", "0") // the daemon's default is to remove
	}
	if opts.ForceRemove {
		q.Set("forcerm", "1")
	}
	if len(opts.Labels) > 0 {
		b, err := json.Marshal(opts.Labels)
		if err != nil {
			return "", fmt.Errorf("docker build: labels: %w", err)
		}
		q.Set("labels", string(b))
	}
	if opts.Version != "" {
		q.Set("version", opts.Version)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: "/build", query: q, body: buildContext, ctype: "application/x-tar"})
	if err != nil {
		return "", err
	}
	defer drain(resp.Body)
	id, err := readBuild(resp.Body)
	if err != nil {
		return "", fmt.Errorf("docker build: %w", err)
	}
	return id, nil
}

// BuildError is a build's failure as its progress stream reported it.
type BuildError struct {
	Message string   // the error line's
	Before  []string // the last lines of output before it (at most 4)
}

func (e *BuildError) Error() string {
	if len(e.Before) == 0 {
		return e.Message
	}
	return fmt.Sprintf("%s (after: %s)", e.Message, strings.Join(e.Before, " | "))
}

// readBuild reads a build's progress stream (a sequence of JSON messages) to its end:
// the image id the daemon reports (in an "aux" message), or the *BuildError of the
// first message carrying an error (its errorDetail's message, else its error).
func readBuild(body io.Reader) (string, error) {
	dec := json.NewDecoder(body)
	var tail []string
	var imageID string
	for {
		var m struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
			Aux json.RawMessage `json:"aux"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return imageID, nil
		} else if err != nil {
			return "", fmt.Errorf("read the build's output: %w", err)
		}
		msg := m.Error
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			msg = m.ErrorDetail.Message
		}
		if msg != "" || m.ErrorDetail != nil {
			if msg == "" {
				msg = "the build failed (an error without a message)"
			}
			return "", &BuildError{Message: msg, Before: tail}
		}
		if len(m.Aux) > 0 {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				imageID = aux.ID
			}
		}
		if s := strings.TrimSpace(m.Stream); s != "" {
			tail = append(tail[max(0, len(tail)-3):], s)
		}
	}
}

// ImageConfig is the part of an image's configuration faultline reads.
type ImageConfig struct {
	Entrypoint []string          `json:"Entrypoint"`
	Env        []string          `json:"Env"`
	Labels     map[string]string `json:"Labels"`
}

// Image is ImageInspect's answer.
type Image struct {
	ID       string       `json:"Id"` // "sha256:..."
	RepoTags []string     `json:"RepoTags"`
	Config   *ImageConfig `json:"Config"`
}

// ImageInspect returns the image of that reference or id (IsNotFound when there is
// none here).
func (c *Client) ImageInspect(ctx context.Context, ref string) (Image, error) {
	var out Image
	err := c.call(ctx, request{method: http.MethodGet, path: "/images/" + id(ref) + "/json"}, nil, &out)
	return out, err
}

// ImageSummary is one image of ImageList.
type ImageSummary struct {
	ID       string            `json:"Id"`
	RepoTags []string          `json:"RepoTags"`
	Labels   map[string]string `json:"Labels"`
}

// ImageList lists the images matching filters (the tagged ones, and untagged ones that
// no other image is built on).
func (c *Client) ImageList(ctx context.Context, filters Filters) ([]ImageSummary, error) {
	var out []ImageSummary
	err := c.call(ctx, request{method: http.MethodGet, path: "/images/json", query: listQuery(filters)}, nil, &out)
	return out, err
}

// ImageRemoveOptions: Force removes an image even when it has several tags or a
// stopped container uses it; NoPrune keeps its untagged parents.
type ImageRemoveOptions struct {
	Force   bool
	NoPrune bool
}

// ImageRemove untags the image reference (or removes the image of that id) and deletes
// the image once nothing names it (IsNotFound when there is none; IsConflict when a
// container uses it).
func (c *Client) ImageRemove(ctx context.Context, ref string, opts ImageRemoveOptions) error {
	q := url.Values{}
	if opts.Force {
		q.Set("force", "1")
	}
	if opts.NoPrune {
		q.Set("noprune", "1")
	}
	return c.call(ctx, request{method: http.MethodDelete, path: "/images/" + id(ref), query: q}, nil, nil)
}
