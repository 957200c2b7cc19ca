package harness

import (
	"context"
	"fmt"

	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/runtime/process"
	"github.com/faultline/faultline/harness/runtime/vclock"
	"github.com/faultline/faultline/internal/netns"
)

// Clean removes whatever runs left behind on this host, and nothing of a run whose
// harness still lives: node processes (found by RunEnv in their environment), the
// clock patch helpers (vclock) whose harness died, the
// containers, networks and volumes labelled faultline=1 (when a Docker daemon answers),
// the FUSE disks of dead harnesses (their data left in place), then the runs' namespaces,
// bridges and rules; with images, also the node images (a cache). It touches nothing that
// is not marked as faultline's. It returns what it removed.
func Clean(ctx context.Context, images bool) ([]string, error) {
	// First the clock patch helpers of dead harnesses: the nodes they trace go on.
	removed := vclock.CleanOrphans()
	r0, err := process.CleanOrphans(ctx)
	removed = append(removed, r0...)
	if err != nil {
		return removed, err
	}
	if ok, _ := docker.Available(ctx); ok {
		r, err := docker.CleanAll(ctx)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("clean docker: %w", err)
		}
		if images {
			r, err := docker.RemoveImages(ctx)
			removed = append(removed, r...)
			if err != nil {
				return removed, fmt.Errorf("clean docker images: %w", err)
			}
		}
	}
	// Before the namespaces: a dead harness's disk blocks whatever touches it.
	r, err := cleanDisks()
	removed = append(removed, r...)
	if err != nil {
		return removed, fmt.Errorf("clean disks: %w", err)
	}
	if ok, _ := netns.Available(); ok {
		r, err := netns.CleanAll(ctx)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("clean network: %w", err)
		}
	}
	return removed, nil
}
