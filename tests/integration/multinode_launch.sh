#!/bin/sh
# spanvm launch of a multi-hart guest on 3 local nodes (processes), harts
# spread over them, memory kept coherent by the DSM:
#   multinode_launch.sh BIN_DIR GUEST.elf "NODE0_HARTS" "NODE1_HARTS" "NODE2_HARTS" [FAULTS]
# e.g. ... mp_amo.elf "0,3" "1" "2" "drop=5,dup=5,reorder,delay_us=50"
# Checks: exit code 0 (the guest's), its "checks passed" line on stdout,
# the --stats-file JSON names 3 nodes and guest_exit 0.
set -u
bin=$1 elf=$2 h0=$3 h1=$4 h2=$5 faults=${6:-}
[ -x "$bin/spanvm" ] && [ -x "$bin/spanvm-node" ] && [ -x "$bin/spanvm-coord" ] ||
	{ echo "skip: spanvm binaries not built in $bin"; exit 77; }
[ -f "$elf" ] || { echo "skip: guest $elf not built (riscv64-unknown-elf-gcc missing?)"; exit 77; }
elf=$(realpath "$elf")
dir=$(mktemp -d "${TMPDIR:-/tmp}/spanvm-mn.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
n=$(echo "$h0,$h1,$h2" | tr ',' '\n' | grep -c .)
cat >"$dir/vm.json" <<JSON
{
  "version": 1,
  "vm": { "name": "multinode", "memory_mib": 64, "vcpus": $n, "kernel": "$elf" },
  "cluster": { "coordinator": { "host": "127.0.0.1", "port": 0 },
               "heartbeat_ms": 250, "lease_ms": 5000, "join_timeout_ms": 20000,
               "on_node_failure": "stop" },
  "nodes": [
    { "id": 0, "bind": "127.0.0.1", "vcpus": [$h0] },
    { "id": 1, "bind": "127.0.0.1", "vcpus": [$h1] },
    { "id": 2, "bind": "127.0.0.1", "vcpus": [$h2] }
  ]
}
JSON
SPANVM_RUN_DIR=$dir/run SPANVM_DSM_FAULTS=$faults SPANVM_PROVIDER="tcp;ofi_rxm" \
	timeout 500 "$bin/spanvm" launch "$dir/vm.json" --stats-file "$dir/stats.json" \
	>"$dir/out" 2>"$dir/err"
rc=$?
cat "$dir/out"; tail -8 "$dir/err"
[ $rc -eq 0 ] || { echo "FAIL: spanvm launch exited $rc"; exit 1; }
grep -q "checks passed" "$dir/out" || { echo "FAIL: no 'checks passed' line from the guest"; exit 1; }
grep -q '"guest_exit":0' "$dir/stats.json" || { echo "FAIL: stats file lacks guest_exit 0"; exit 1; }
[ "$(grep -o '"node":[0-9]*' "$dir/stats.json" | wc -l)" -eq 3 ] ||
	{ echo "FAIL: stats file does not name 3 nodes"; cat "$dir/stats.json"; exit 1; }
echo "PASS: $(basename "$elf") on 3 nodes${faults:+ with faults $faults}"
