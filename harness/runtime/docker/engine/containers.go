package engine

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// ContainerConfig is a container's own configuration: what ContainerCreate sends and
// ContainerInspect returns (Config).
type ContainerConfig struct {
	Image    string            `json:"Image,omitempty"`
	Hostname string            `json:"Hostname,omitempty"`
	User     string            `json:"User,omitempty"` // "uid:gid"
	Cmd      []string          `json:"Cmd,omitempty"`
	Env      []string          `json:"Env,omitempty"` // "KEY=value"
	Labels   map[string]string `json:"Labels,omitempty"`
	// StopTimeout is the seconds between SIGTERM and SIGKILL of a stop (nil: the
	// daemon's default, 10).
	StopTimeout *int `json:"StopTimeout,omitempty"`
	Tty         bool `json:"Tty,omitempty"`
}

// HostConfig is how the host runs a container.
type HostConfig struct {
	Binds         []string      `json:"Binds,omitempty"` // "host-path:container-path[:opts]"
	NetworkMode   string        `json:"NetworkMode,omitempty"`
	RestartPolicy RestartPolicy `json:"RestartPolicy,omitzero"`
	LogConfig     LogConfig     `json:"LogConfig,omitzero"`

	// Read back by ContainerInspect (ContainerCreate sends them only when set).
	Privileged      bool                     `json:"Privileged,omitempty"`
	CapAdd          []string                 `json:"CapAdd,omitempty"`
	PublishAllPorts bool                     `json:"PublishAllPorts,omitempty"`
	PortBindings    map[string][]PortBinding `json:"PortBindings,omitempty"` // "8080/tcp" → bindings
}

// RestartPolicy: Name is "no", "always", "on-failure" or "unless-stopped".
type RestartPolicy struct {
	Name string `json:"Name,omitempty"`
}

// LogConfig: Type is the log driver, "json-file" for one the logs call can read back.
type LogConfig struct {
	Type string `json:"Type,omitempty"`
}

// PortBinding is a container port published on the host.
type PortBinding struct {
	HostIP   string `json:"HostIp,omitempty"`
	HostPort string `json:"HostPort,omitempty"`
}

// NetworkingConfig attaches a container to networks at its creation: network name →
// the container's endpoint on it.
type NetworkingConfig struct {
	EndpointsConfig map[string]*EndpointSettings `json:"EndpointsConfig,omitempty"`
}

// EndpointSettings is a container's endpoint on a network.
type EndpointSettings struct {
	Aliases    []string            `json:"Aliases,omitempty"` // names the others resolve it by
	IPAMConfig *EndpointIPAMConfig `json:"IPAMConfig,omitempty"`
}

// EndpointIPAMConfig fixes an endpoint's address.
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address,omitempty"`
}

// ContainerSpec is all ContainerCreate needs: the container's configuration, the host's
// and the networks it is attached to.
type ContainerSpec struct {
	ContainerConfig                    // sent flat, as the API wants it
	HostConfig       *HostConfig       `json:"HostConfig,omitempty"`
	NetworkingConfig *NetworkingConfig `json:"NetworkingConfig,omitempty"`
}

// ContainerCreate creates (not starts) a container named name ("" lets the daemon
// name it) and returns its id. A name in use is a conflict (IsConflict); an image
// absent here is not found (IsNotFound): the daemon does not pull on create.
func (c *Client) ContainerCreate(ctx context.Context, name string, spec ContainerSpec) (string, error) {
	q := url.Values{}
	if name != "" {
		q.Set("name", name)
	}
	var out struct {
		ID string `json:"Id"`
	}
	err := c.call(ctx, request{method: http.MethodPost, path: "/containers/create", query: q}, spec, &out)
	return out.ID, err
}

// ContainerState is a container's state as of ContainerInspect.
type ContainerState struct {
	Status   string `json:"Status"`  // "created", "running", "paused", "exited", ...
	Running  bool   `json:"Running"` // true also while paused
	Paused   bool   `json:"Paused"`
	Pid      int    `json:"Pid"` // of its first process, 0 when not running
	ExitCode int    `json:"ExitCode"`
}

// ContainerInfo is ContainerInspect's answer.
type ContainerInfo struct {
	ID         string           `json:"Id"`
	Name       string           `json:"Name"` // "/name"
	State      *ContainerState  `json:"State"`
	Config     *ContainerConfig `json:"Config"`
	HostConfig *HostConfig      `json:"HostConfig"`
}

// ContainerInspect returns the container's configuration and state (IsNotFound when
// there is no such container).
func (c *Client) ContainerInspect(ctx context.Context, container string) (ContainerInfo, error) {
	var out ContainerInfo
	err := c.call(ctx, request{method: http.MethodGet, path: "/containers/" + id(container) + "/json"}, nil, &out)
	return out, err
}

// ContainerStart starts a created or stopped container (starting a running one is
// no error).
func (c *Client) ContainerStart(ctx context.Context, container string) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id(container) + "/start"}, nil, nil)
}

// ContainerStop sends the container its stop signal (SIGTERM by default), then
// SIGKILL after timeout seconds (nil: the container's StopTimeout, else the daemon's
// default), and returns once it has stopped. Stopping a stopped container is no error.
func (c *Client) ContainerStop(ctx context.Context, container string, timeout *int) error {
	q := url.Values{}
	if timeout != nil {
		q.Set("t", strconv.Itoa(*timeout))
	}
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id(container) + "/stop", query: q}, nil, nil)
}

// ContainerKill sends the container signal ("KILL", "SIGTERM", "9"; "" is KILL). It
// does not wait for the container to stop. A container not running is a conflict.
func (c *Client) ContainerKill(ctx context.Context, container, signal string) error {
	q := url.Values{}
	if signal != "" {
		q.Set("signal", signal)
	}
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id(container) + "/kill", query: q}, nil, nil)
}

// ContainerPause freezes the container's processes (the cgroup freezer).
func (c *Client) ContainerPause(ctx context.Context, container string) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id(container) + "/pause"}, nil, nil)
}

// ContainerUnpause thaws a paused container.
func (c *Client) ContainerUnpause(ctx context.Context, container string) error {
	return c.call(ctx, request{method: http.MethodPost, path: "/containers/" + id(container) + "/unpause"}, nil, nil)
}

// RemoveOptions: Force kills a running container first; Volumes removes its anonymous
// volumes with it.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// ContainerRemove removes the container (IsNotFound when there is none).
func (c *Client) ContainerRemove(ctx context.Context, container string, opts RemoveOptions) error {
	q := url.Values{}
	if opts.Force {
		q.Set("force", "1")
	}
	if opts.Volumes {
		q.Set("v", "1")
	}
	return c.call(ctx, request{method: http.MethodDelete, path: "/containers/" + id(container), query: q}, nil, nil)
}

// ContainerSummary is one container of ContainerList.
type ContainerSummary struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"` // "/name"
	Image  string            `json:"Image"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// ContainerList lists the containers matching filters: the running ones, or with all
// every one.
func (c *Client) ContainerList(ctx context.Context, all bool, filters Filters) ([]ContainerSummary, error) {
	q := listQuery(filters)
	if all {
		q.Set("all", "1")
	}
	var out []ContainerSummary
	err := c.call(ctx, request{method: http.MethodGet, path: "/containers/json", query: q}, nil, &out)
	return out, err
}
