package engine

import (
	"context"
	"net/http"
	"net/url"
)

// Volume is one volume of VolumeList.
type Volume struct {
	Name   string            `json:"Name"`
	Driver string            `json:"Driver"`
	Labels map[string]string `json:"Labels"`
}

// VolumeList lists the volumes matching filters.
func (c *Client) VolumeList(ctx context.Context, filters Filters) ([]Volume, error) {
	var out struct {
		Volumes []Volume `json:"Volumes"`
	}
	err := c.call(ctx, request{method: http.MethodGet, path: "/volumes", query: listQuery(filters)}, nil, &out)
	return out.Volumes, err
}

// VolumeRemove removes the volume (IsNotFound when none; IsConflict while a container
// uses it). force removes it even when its driver fails to.
func (c *Client) VolumeRemove(ctx context.Context, name string, force bool) error {
	q := url.Values{}
	if force {
		q.Set("force", "1")
	}
	return c.call(ctx, request{method: http.MethodDelete, path: "/volumes/" + id(name), query: q}, nil, nil)
}
