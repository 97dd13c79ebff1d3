#!/bin/sh
# The coherence stress guest across three namespace hosts (spanvm-node
# processes, DSM over tcp;ofi_rxm) while spanvm-chaos cuts links for less
# than the lease: the vCPUs that need the far side stall and resume; at the
# end the host-side checker must find every counter exact, every message
# once and in order, no stale code (deploy/netns/coherence-check).
# usage: netns_partition_coherence.sh SRC BINDIR GUEST_ELF
set -u
SRC=$1 B=$2 ELF=$(cd "$(dirname "$3")" 2>/dev/null && pwd)/$(basename "$3")
. "$SRC/tests/integration/deploy_lib.sh"
need_netns
[ -f "$ELF" ] || { echo "SKIP: $ELF not built"; exit 77; }
TAG=p$(($$ % 10000000))
CL="$SRC/deploy/netns/cluster.sh"
CHAOS="$SRC/deploy/netns/spanvm-chaos"
export SPANVM_BIN="$B" SPANVM_NETNS_TAG="$TAG" SPANVM_NETNS_OWNER=$$ SPANVM_NETNS_LEASE_MS=5000 \
	SPANVM_NETNS_HEARTBEAT_MS=250 SPANVM_NETNS_KERNEL="$ELF" SPANVM_NETNS_VCPUS=4
D=/run/spanvm-netns/$TAG
T=$(mktemp -d /tmp/spanvm-pcoh-XXXXXX)
trap '"$CL" down >/dev/null 2>&1; rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$D"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; grep -v "DBG\|COH" "$f" | tail -n 10 >&2; }; done
	exit 1
}
"$CL" up 3 2>"$T/up.err" || { cat "$T/up.err" >&2; fail "up 3 with the guest"; }
"$CHAOS" sleep 500 cut 1 2 sleep 1000 heal 1 2 sleep 500 isolate 3 sleep 1000 heal-all \
	sleep 500 oneway 2 1 sleep 800 heal-all 2>"$T/chaos.err" || fail "chaos"
t0=$(ms)
until grep -q "guest exited with code" "$D"/node*.log 2>/dev/null; do
	[ $(($(ms) - t0)) -gt 240000 ] && fail "guest did not finish within 240 s"
	grep -q "ERR coord: node [0-9]* failed" "$D/coord.log" && fail "a node was declared failed"
	sleep 0.5
done
grep -h "guest exited with code 0" "$D"/node*.log >/dev/null || fail "guest exit code not 0"
cat "$D"/node*.log | "$SRC/deploy/netns/coherence-check" >"$T/sum.json" 2>"$T/check.err" ||
	{ cat "$T/sum.json" "$T/check.err" >&2; fail "coherence violations"; }
# The guest's exit stops the cluster in order; each node dumps its final
# DSM state at its stop, and the merged dumps must be coherent.
t0=$(ms)
for p in $(awk '{print $2}' "$D/pids"); do
	while alive "$p"; do
		[ $(($(ms) - t0)) -gt 30000 ] && fail "the cluster did not stop after the guest exited"
		sleep 0.1
	done
done
"$SRC/deploy/netns/dsm-audit-check" --expect-nodes 3 "$D"/dsm-audit-node-*.txt >"$T/audit.json" \
	2>"$T/audit.err" || { cat "$T/audit.json" "$T/audit.err" >&2; fail "DSM audit of the final state"; }
grep -q '"copies": [1-9]' "$T/audit.json" || { cat "$T/audit.json" >&2; fail "audit saw no copies"; }
echo "cuts during the run: $(cat "$D/chaos.cuts"); checker: $(cat "$T/sum.json"); audit: $(cat "$T/audit.json")"
