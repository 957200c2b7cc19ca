#!/bin/sh
# Builds what examples/nats.yaml runs into bin/ at the top of the repository: the shim
# (bin/nats-kv-shim) and each nats-server release asked for (bin/nats-server-<version>),
# from the Go module proxy, static, so that the docker runtime can run them as they are.
#
#   examples/nats/build.sh                     # the newest release the example is tried on
#   examples/nats/build.sh v2.10.22 v2.10.23   # others, e.g. for faultline bisect
#
# NATS_BIN=DIR puts them in DIR instead (faultline's tests keep them in the user cache).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${NATS_BIN:-$(cd "$here/../.." && pwd)/bin}
mkdir -p "$bin"
[ $# -gt 0 ] || set -- v2.15.3
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$bin/nats-kv-shim" .)
echo "built $bin/nats-kv-shim"
for v in "$@"; do
	out="$bin/nats-server-$v"
	if [ -x "$out" ]; then
		echo "have $out"
		continue
	fi
	tmp=$(mktemp -d)
	CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-trimpath go install "github.com/nats-io/nats-server/v2@$v"
	mv "$tmp/nats-server" "$out"
	rmdir "$tmp"
	echo "built $out"
done
