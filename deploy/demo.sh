#!/bin/sh
# make demo, in two parts:
# 1. a coordinator and 3 nodes on loopback find each other, check every peer
#    (message round trip + one-sided RMA read of a known page), report
#    status, and stop in order;
# 2. one VM spanning those 3 local nodes: the guest's 4 harts (0,3 on node 0,
#    1 on node 1, 2 on node 2) add to shared counters with AMOs and LR/SC
#    while the DSM moves the pages between the node processes; the guest
#    checks the exact totals, and the launcher prints per-node DSM statistics.
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

guest="$build/guest/mp_amo.elf"
if [ ! -f "$guest" ]; then
	echo "demo: $guest was not built (is riscv64-unknown-elf-gcc installed?)" >&2
	exit 1
fi
vmdir="$SPANVM_RUN_DIR/vm"
mkdir -p "$vmdir"
cat >"$vmdir/vm.json" <<JSON
{
  "version": 1,
  "vm": { "name": "demo-amo", "memory_mib": 64, "vcpus": 4, "kernel": "$(realpath "$guest")" },
  "cluster": { "coordinator": { "host": "127.0.0.1", "port": 0 },
               "heartbeat_ms": 250, "lease_ms": 5000, "join_timeout_ms": 20000,
               "on_node_failure": "stop" },
  "nodes": [
    { "id": 0, "bind": "127.0.0.1", "vcpus": [0, 3] },
    { "id": 1, "bind": "127.0.0.1", "vcpus": [1] },
    { "id": 2, "bind": "127.0.0.1", "vcpus": [2] }
  ]
}
JSON
echo
echo "== spanvm launch: guest $(basename "$guest") with its harts on 3 node processes"
SPANVM_RUN_DIR="$vmdir/run" "$bin/spanvm" launch "$vmdir/vm.json" --stats-file "$vmdir/stats.json"
echo "== guest exit code 0; statistics per node in $vmdir/stats.json (removed on exit)"
