#!/bin/sh
# spanvm launch of the Linux guest with 4 harts over 3 local node processes
# (harts 0,1 on the console node, 2 and 3 on the others; guest RAM kept
# coherent by the DSM; IPIs, remote fences, HSM and UART/PLIC accesses as
# node-to-node messages).  Checks: exit 0 after the SBI power-off, the
# kernel log shows all 4 harts online, the init saw 4 harts, one worker
# line per hart on 4 distinct harts, the workload's result verified by the
# init, and the launcher's hot-page table at the end.
# With MODE "badinitrd" the config names an initrd that does not exist:
# every node must say so and the launch fail (exit 1) before any hart runs.
# With MODE "faults" every node's transport drops, duplicates, reorders and
# delays its sends (SPANVM_DSM_FAULTS): the boot must still check out, and
# the statistics must show DSM and node-to-node (IPI/HSM/MMIO) requests
# resent and duplicates recognised, so the faults did hit those paths.
# Usage: linux_launch3.sh BIN_DIR GUEST_DIR [APPEND] [MODE]
set -u
bin=$1 gdir=$2 append=${3:-console=ttyS0 spanvm_short} mode=${4:-}
[ -x "$bin/spanvm" ] && [ -x "$bin/spanvm-node" ] && [ -x "$bin/spanvm-coord" ] ||
	{ echo "SKIP: spanvm binaries not built in $bin"; exit 77; }
[ -f "$gdir/Image" ] && [ -f "$gdir/initramfs.cpio" ] ||
	{ echo "SKIP: no guest in $gdir (linux.build skipped)"; exit 77; }
gdir=$(realpath "$gdir")
dir=$(mktemp -d "${TMPDIR:-/tmp}/spanvm-l3.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
initrd=$gdir/initramfs.cpio
[ "$mode" = badinitrd ] && initrd=$dir/missing.cpio
cat >"$dir/vm.json" <<JSON
{
  "version": 1,
  "vm": { "name": "linux3", "memory_mib": 128, "vcpus": 4,
          "kernel": "$gdir/Image", "initrd": "$initrd",
          "cmdline": "$append" },
  "cluster": { "coordinator": { "host": "127.0.0.1", "port": 0 },
               "heartbeat_ms": 250, "lease_ms": 5000, "join_timeout_ms": 20000,
               "on_node_failure": "stop" },
  "nodes": [
    { "id": 1, "bind": "127.0.0.1", "vcpus": [0, 1] },
    { "id": 2, "bind": "127.0.0.1", "vcpus": [2] },
    { "id": 3, "bind": "127.0.0.1", "vcpus": [3] }
  ]
}
JSON
[ "$mode" = faults ] && export SPANVM_DSM_FAULTS="drop=2,dup=5,reorder,delay_us=50,seed=11"
SPANVM_RUN_DIR=$dir/run SPANVM_PROVIDER="tcp;ofi_rxm" </dev/null \
	timeout 1100 "$bin/spanvm" launch "$dir/vm.json" --stats-file "$dir/stats.json" \
	>"$dir/out" 2>"$dir/err"
rc=$?
fail() { echo "FAIL: $*"; echo "---- console ----"; cat "$dir/out"; echo "---- stderr ----"; tail -40 "$dir/err"; exit 1; }
if [ "$mode" = badinitrd ]; then
	[ $rc -eq 1 ] || fail "spanvm launch exited $rc, want 1 (bad initrd)"
	n=$(grep -c "initrd $dir/missing.cpio: cannot open" "$dir/err")
	[ "$n" -ge 1 ] || fail "no error naming the missing initrd"
	! grep -q "Linux version" "$dir/out" || fail "the kernel ran despite the bad initrd"
	echo "ok: missing initrd refused by $n node(s), exit 1, no hart ran"
	exit 0
fi
[ $rc -eq 0 ] || fail "spanvm launch exited $rc, want 0 (power-off)"
grep -q "smp: Brought up 1 node, 4 CPUs" "$dir/out" || fail "not all 4 harts online"
grep -q "^init: start, 4 harts" "$dir/out" || fail "init did not see 4 harts"
grep -q "^init: workload ok" "$dir/out" || fail "workload result not verified"
n=$(grep -c "^init: hart [0-9]* worker" "$dir/out")
[ "$n" -eq 4 ] || fail "$n worker lines, want 4"
d=$(grep "^init: hart [0-9]* worker" "$dir/out" | awk '{print $3}' | sort -u | wc -l)
[ "$d" -eq 4 ] || fail "workers ran on $d distinct harts, want 4"
grep -q "reboot: Power down" "$dir/out" || fail "no power-down message"
grep -q '"guest_exit":0' "$dir/stats.json" || fail "stats file lacks guest_exit 0"
grep -q "hottest guest pages" "$dir/err" || fail "no hot-page table from the launcher"
grep -A11 "hottest guest pages" "$dir/err"
if [ "$mode" = faults ]; then
	# sums over the nodes: DSM request retransmissions, duplicate grants
	# recognised, node-to-node requests resent and duplicates answered
	sums=$(python3 -c '
import json, sys
n = json.load(open(sys.argv[1]))["nodes"]
print(sum(x["req_retx"] for x in n), sum(x["grants_dup"] for x in n),
      sum(x["linux"]["req_retx"] for x in n), sum(x["linux"]["req_dup"] for x in n))
' "$dir/stats.json") || fail "cannot read the statistics"
	set -- $sums
	[ "$1" -gt 0 ] && [ "$2" -gt 0 ] || fail "DSM faults not exercised: req_retx $1, grants_dup $2"
	[ "$3" -gt 0 ] && [ "$4" -gt 0 ] ||
		fail "node-to-node faults not exercised: resent $3, duplicates $4"
	echo "faults: DSM requests resent $1, duplicate grants $2; node requests resent $3, duplicates $4"
fi
echo "ok: 4 harts on 3 nodes, $(grep '^init: workload' "$dir/out")"
