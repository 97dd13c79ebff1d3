#!/bin/sh
# Partitions that MUST end the VM, in order, with the right diagnosis and no
# hang (namespace cluster, tcp;ofi_rxm, spanvm-chaos):
#  1. node 3 isolated from everyone past the lease (policy "stop"): the
#     coordinator declares node 3 failed ("no heartbeat ... and no peer
#     reached it"), stops nodes 2 and 1 in order and exits; node 3 leaves by
#     itself (it lost the coordinator and its peers).  Bounded in time.
#  2. node 2 cut from its peers only (its coordinator link intact; policy
#     "continue"): failed as "unreachable from its peers"; `spanvm status`
#     names node 2 with that reason while nodes 1 and 3 run on.
# usage: netns_partition_lease.sh SRC BINDIR
set -u
SRC=$1 B=$2
. "$SRC/tests/integration/deploy_lib.sh"
need_netns
TAG=l$(($$ % 10000000))
LEASE=2000
CL="$SRC/deploy/netns/cluster.sh"
CHAOS="$SRC/deploy/netns/spanvm-chaos"
export SPANVM_BIN="$B" SPANVM_NETNS_TAG="$TAG" SPANVM_NETNS_OWNER=$$ SPANVM_NETNS_LEASE_MS=$LEASE \
	SPANVM_NETNS_HEARTBEAT_MS=200
D=/run/spanvm-netns/$TAG
T=$(mktemp -d /tmp/spanvm-lease-XXXXXX)
trap '"$CL" down >/dev/null 2>&1; rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$D"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; grep -v DBG "$f" | tail -n 12 >&2; }; done
	exit 1
}
pid_of() { awk -v k="$1" '$1 == k {print $2}' "$D/pids"; }

# --- 1: node 3 isolated past the lease -> orderly stop
SPANVM_NETNS_POLICY=stop "$CL" up 3 2>"$T/up.err" || { cat "$T/up.err" >&2; fail "up 3"; }
CPID=$(pid_of coord)
PIDS=$(awk '{print $2}' "$D/pids")
t0=$(ms)
"$CHAOS" isolate 3 2>>"$T/chaos.err" || fail "chaos isolate 3"
for p in $PIDS; do
	while alive "$p"; do
		[ $(($(ms) - t0)) -gt $((4 * LEASE + 5000)) ] && fail "process $p still running: the stop hangs"
		sleep 0.05
	done
done
el=$(($(ms) - t0))
echo "node 3 isolated: every process gone after ${el} ms (lease ${LEASE} ms)"
[ "$el" -ge $((LEASE / 2)) ] || fail "the cluster ended before the lease could run out (${el} ms)"
expect_in "$D/coord.log" "node 3 failed: no heartbeat for" "diagnosis"
expect_in "$D/coord.log" "and no peer reached it" "diagnosis names the data plane too"
expect_in "$D/coord.log" "orderly stop: node 3 failed" "orderly stop after the failure"
expect_in "$D/coord.log" "phase stopping -> stopped" "stop completed"
grep -n "stopping node [12]" "$D/coord.log" | tr '\n' ' ' | grep -q "stopping node 2.*stopping node 1" ||
	fail "survivors not stopped in reverse config order (2 then 1)"
for i in 1 2; do
	expect_in "$D/node$i.log" "node 3 failed" "node $i told of the failure"
	expect_in "$D/node$i.log" "stop: node 3 failed" "node $i stopped in order"
done
expect_in "$D/node3.log" "leaving" "isolated node 3 leaves by itself"
grep -q "ERR coord: node [12] failed" "$D/coord.log" && fail "a healthy node was declared failed"
"$CL" down 2>/dev/null || fail "down after the stop"
ip netns list | grep -q "spanvm-$TAG-" && fail "namespaces left after down"

# --- 2: node 2 cut from its peers, coordinator link intact, policy continue
SPANVM_NETNS_POLICY=continue "$CL" up 3 2>"$T/up.err" || { cat "$T/up.err" >&2; fail "up 3 (continue)"; }
t0=$(ms)
"$CHAOS" cut 1 2 cut 2 3 2>>"$T/chaos.err" || fail "chaos"
until "$CL" status --json >"$T/st.json" 2>/dev/null &&
	sed -n '/"id": 2,/{n;p;}' "$T/st.json" | grep -q '"state": "failed"'; do
	[ $(($(ms) - t0)) -gt $((3 * LEASE + 3000)) ] && { cat "$T/st.json" >&2; fail "node 2 not declared failed"; }
	sleep 0.1
done
el=$(($(ms) - t0))
echo "node 2 cut from its peers: declared failed after ${el} ms (lease ${LEASE} ms)"
[ "$el" -ge $((LEASE / 2)) ] || fail "node 2 failed before the lease could run out"
grep -q '"reason": "unreachable from its peers for' "$T/st.json" || { cat "$T/st.json" >&2; fail "status reason"; }
[ "$(grep -c '"state": "running"' "$T/st.json")" -eq 2 ] || { cat "$T/st.json" >&2; fail "nodes 1 and 3 should run on"; }
"$CL" status >"$T/st.txt" 2>&1
grep -q "^2 *failed" "$T/st.txt" || { cat "$T/st.txt" >&2; fail "status table names node 2 failed"; }
"$CHAOS" heal-all 2>>"$T/chaos.err"
"$CL" down 2>/dev/null || fail "down"
ip netns list | grep -q "spanvm-$TAG-" && fail "namespaces left after down"
echo "lease partition test passed"
