package harness

import (
	"context"
	"os"
	"os/exec"

	"github.com/faultline/faultline/internal/netns"
)

// WantUserNS reports whether a run of spec should re-execute itself in an unprivileged
// user namespace (netns.RunInUserNS): it will run its nodes as local processes, it is not
// root, and the namespace tools are there. In that namespace it is root over namespaces
// of its own, so its nodes get addresses of their own and partitions are real; without
// it they would share loopback.
func WantUserNS(ctx context.Context, spec Spec) bool {
	if os.Geteuid() == 0 || netns.InUserNS() {
		return false
	}
	if name, _ := ResolveRuntime(ctx, spec.Runtime); name != "process" {
		return false
	}
	for _, tool := range []string{"ip", "nsenter", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := exec.LookPath("/usr/sbin/" + tool); err != nil {
				return false
			}
		}
	}
	return true
}
