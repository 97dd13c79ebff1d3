#!/bin/sh
# Partitions that MUST end the VM, in order, with the right diagnosis and no
# hang (namespace cluster, tcp;ofi_rxm, spanvm-chaos):
#  1. node 3 isolated from everyone past the lease (policy "stop"): the
#     coordinator declares node 3 failed ("no heartbeat ... and no peer
#     reached it"), stops nodes 2 and 1 in order and exits; node 3 leaves by
#     itself (it lost the coordinator and its peers).  Bounded in time.
#     With GUEST_ELF (the coherence stress guest, 4 harts) running: once the
#     coordinator is gone, `spanvm status` shows its final status naming
#     node 3 and the guest pages whose only copy node 3 held: every page
#     node 3 held Modified (its own audit dump) whose home survived must be
#     listed, and no page a survivor still holds may be.
#  2. node 2 cut from its peers only (its coordinator link intact; policy
#     "continue"): failed as "unreachable from its peers"; `spanvm status`
#     names node 2 with that reason while nodes 1 and 3 run on.
# usage: netns_partition_lease.sh SRC BINDIR [GUEST_ELF]
set -u
SRC=$1 B=$2 ELF=${3:-}
. "$SRC/tests/integration/deploy_lib.sh"
need_netns
TAG=l$(($$ % 10000000))
LEASE=3000 # a guest runs on two shared cores meanwhile
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
# pages of an audit dump (dsm/dsm.h) as guest-physical addresses, one per
# line: held in STATES (e.g. M or SM) and, with HOMES, homed on one of them
dump_pages() { # file states [homes]
	awk -v st="$2" -v homes=",${3:-}," '
		function hex(s,   v, i) { v = 0; s = tolower(s); sub(/^0x/, "", s)
			for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
			return v }
		$1 == "audit" { for (i = 2; i <= NF; i++) if ($i ~ /^base=/) base = hex(substr($i, 6)) }
		$1 == "L" && index(st, $3) && (homes == ",," || index(homes, "," $5 ",")) {
			printf "0x%x\n", base + $2 * 4096 }' "$1"
}
check_lost_pages() {
	"$CL" status --json >"$T/final.json" 2>"$T/final.err"
	rc=$?
	[ $rc -eq 3 ] || { cat "$T/final.json" "$T/final.err" >&2; fail "status after the stop: exit $rc, want 3 (final status)"; }
	grep -q '"final": true' "$T/final.json" || fail "status is not the final one"
	tr -d ' \n' <"$T/final.json" | grep -q '"failed_nodes":\[3\]' ||
		{ cat "$T/final.json" >&2; fail "final status does not name node 3 as the failed node"; }
	tr -d ' \n' <"$T/final.json" | grep -q '"lost_reports":2' ||
		{ cat "$T/final.json" >&2; fail "both survivors should report their lost pages"; }
	tr -d ' \n' <"$T/final.json" | sed -n 's/.*"lost_pages":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' |
		tr -d '"' | sort -u >"$T/lost"
	tr -d ' \n' <"$T/final.json" | sed -n 's/.*"uncertain_pages":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' |
		tr -d '"' | sort -u >"$T/uncertain"
	for i in 1 2 3; do
		[ -f "$D/dsm-audit-node-$i.txt" ] || fail "node $i wrote no audit dump"
	done
	dump_pages "$D/dsm-audit-node-3.txt" M 1,2 | sort -u >"$T/m3"
	[ -s "$T/m3" ] || fail "node 3 held no page Modified that is homed on a survivor: nothing to check"
	comm -23 "$T/m3" "$T/uncertain" | comm -23 - "$T/lost" >"$T/missing"
	[ -s "$T/missing" ] && { cat "$T/final.json" >&2; fail "pages node 3 held Modified are not listed as lost: $(tr '\n' ' ' <"$T/missing")"; }
	{ dump_pages "$D/dsm-audit-node-1.txt" SM; dump_pages "$D/dsm-audit-node-2.txt" SM; } | sort -u >"$T/alive"
	comm -12 "$T/alive" "$T/lost" >"$T/wrong"
	[ -s "$T/wrong" ] && fail "pages a survivor still holds are listed as lost: $(tr '\n' ' ' <"$T/wrong")"
	"$CL" status >"$T/final.txt" 2>/dev/null
	grep -q "^3 *failed" "$T/final.txt" || { cat "$T/final.txt" >&2; fail "final status table names node 3 failed"; }
	grep -q "only copy a failed node held: [1-9]" "$T/final.txt" || { cat "$T/final.txt" >&2; fail "final status table lists the lost pages"; }
	echo "final status: node 3 failed; $(wc -l <"$T/lost") pages lost (node 3 held $(wc -l <"$T/m3") Modified pages homed on survivors, all listed; none of the $(wc -l <"$T/alive") pages the survivors hold is)"
}

# --- 1: node 3 isolated past the lease -> orderly stop
if [ -f "$ELF" ]; then
	ELF=$(cd "$(dirname "$ELF")" && pwd)/$(basename "$ELF")
	SPANVM_NETNS_KERNEL=$ELF SPANVM_NETNS_VCPUS=4 SPANVM_NETNS_POLICY=stop "$CL" up 3 2>"$T/up.err" ||
		{ cat "$T/up.err" >&2; fail "up 3 with the guest"; }
	t0=$(ms)
	until grep -q "running the harts" "$D/node3.log" 2>/dev/null; do
		[ $(($(ms) - t0)) -gt 30000 ] && fail "node 3's harts did not start"
		sleep 0.1
	done
	sleep 3 # the harts touch pages across the nodes meanwhile
else
	echo "no guest given: lost pages not checked"
	SPANVM_NETNS_POLICY=stop "$CL" up 3 2>"$T/up.err" || { cat "$T/up.err" >&2; fail "up 3"; }
fi
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
[ -f "$ELF" ] && check_lost_pages
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
