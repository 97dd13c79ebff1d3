#!/bin/sh
# make demo: a coordinator and 3 nodes on loopback find each other, check
# every peer (message round trip + one-sided RMA read of a known page),
# report status, and stop in order.
#   deploy/demo.sh [BUILD_DIR] [--foreground]
# --foreground keeps the cluster up until Ctrl-C instead.
set -eu
build="${1:-build}"
bin="$build/bin"
cfg=deploy/examples/3node.json
if [ "${2:-}" = "--foreground" ]; then
	exec "$bin/spanvm" launch "$cfg"
fi
SPANVM_RUN_DIR=$(mktemp -d /tmp/spanvm-demo-XXXXXX)
export SPANVM_RUN_DIR
cleanup() { "$bin/spanvm" stop >/dev/null 2>&1 || true; rm -rf "$SPANVM_RUN_DIR"; }
trap cleanup EXIT
trap 'exit 130' HUP INT PIPE TERM

echo "== spanvm launch $cfg --detach"
"$bin/spanvm" launch "$cfg" --detach --log-level info
echo
echo "== peer checks, from the node logs"
grep -h "peer .* ok" "$SPANVM_RUN_DIR"/node*.log | sed 's/^spanvm\[//; s/\] INFO node:/:/'
echo
echo "== spanvm status --json"
"$bin/spanvm" status --json
echo
echo "== spanvm stop"
"$bin/spanvm" stop
