package engine

import (
	"context"
	"net/http"
)

// IPAM is a network's address management: the driver ("default") and its pools.
type IPAM struct {
	Driver string       `json:"Driver,omitempty"`
	Config []IPAMConfig `json:"Config"`
}

// IPAMConfig is one address pool of a network.
type IPAMConfig struct {
	Subnet  string `json:"Subnet,omitempty"`  // "10.214.3.0/24"
	Gateway string `json:"Gateway,omitempty"` // "10.214.3.1"
}

// NetworkSpec is what NetworkCreate creates.
type NetworkSpec struct {
	Name   string            `json:"Name"`
	Driver string            `json:"Driver,omitempty"` // "bridge" when empty
	Labels map[string]string `json:"Labels,omitempty"`
	IPAM   *IPAM             `json:"IPAM,omitempty"`
}

// Network is a network as NetworkInspect and NetworkList return it.
type Network struct {
	ID     string            `json:"Id"`
	Name   string            `json:"Name"`
	Driver string            `json:"Driver"`
	Labels map[string]string `json:"Labels"`
	IPAM   IPAM              `json:"IPAM"`
}

// NetworkCreate creates a network and returns its id. A subnet overlapping another
// network's is refused with a message saying "overlap"; the daemon may accept a name
// already in use (names are not unique before API 1.44).
func (c *Client) NetworkCreate(ctx context.Context, spec NetworkSpec) (string, error) {
	var out struct {
		ID string `json:"Id"`
	}
	err := c.call(ctx, request{method: http.MethodPost, path: "/networks/create"}, spec, &out)
	return out.ID, err
}

// NetworkInspect returns the network of that id or name (IsNotFound when none).
func (c *Client) NetworkInspect(ctx context.Context, network string) (Network, error) {
	var out Network
	err := c.call(ctx, request{method: http.MethodGet, path: "/networks/" + id(network)}, nil, &out)
	return out, err
}

// NetworkList lists the networks matching filters (all of them with none).
func (c *Client) NetworkList(ctx context.Context, filters Filters) ([]Network, error) {
	var out []Network
	err := c.call(ctx, request{method: http.MethodGet, path: "/networks", query: listQuery(filters)}, nil, &out)
	return out, err
}

// NetworkRemove removes the network (IsNotFound when none; refused while a container
// is attached to it).
func (c *Client) NetworkRemove(ctx context.Context, network string) error {
	return c.call(ctx, request{method: http.MethodDelete, path: "/networks/" + id(network)}, nil, nil)
}

// NetworkConnect attaches the container to the network with endpoint (nil: the
// daemon's choice of address, no aliases).
func (c *Client) NetworkConnect(ctx context.Context, network, container string, endpoint *EndpointSettings) error {
	in := struct {
		Container      string            `json:"Container"`
		EndpointConfig *EndpointSettings `json:"EndpointConfig,omitempty"`
	}{container, endpoint}
	return c.call(ctx, request{method: http.MethodPost, path: "/networks/" + id(network) + "/connect"}, in, nil)
}

// NetworkDisconnect detaches the container from the network; force does it even when
// the daemon cannot reach the container's endpoint cleanly.
func (c *Client) NetworkDisconnect(ctx context.Context, network, container string, force bool) error {
	in := struct {
		Container string `json:"Container"`
		Force     bool   `json:"Force,omitempty"`
	}{container, force}
	return c.call(ctx, request{method: http.MethodPost, path: "/networks/" + id(network) + "/disconnect"}, in, nil)
}
