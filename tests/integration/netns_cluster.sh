#!/bin/sh
# Namespace cluster bring-up and partitions that must NOT stop a healthy VM.
# cluster.sh up 3: coordinator in h0, node I in hI, tcp;ofi_rxm between
# namespaces; all-to-all peer checks; then, with spanvm-chaos:
#  - the coordinator cut off from node 2 briefly (< lease), then for longer
#    than the lease: node 2 stays (its peers vouch for it);
#  - the coordinator cut off from every node for longer than the lease:
#    no node is declared failed (the coordinator is the isolated one);
#  - a node-to-node link cut briefly (< lease);
# the cluster is still whole and running after each; orderly stop; down
# removes every namespace.
# usage: netns_cluster.sh SRC BINDIR
set -u
SRC=$1 B=$2
. "$SRC/tests/integration/deploy_lib.sh"
need_netns
TAG=c$(($$ % 10000000))
LEASE=2000
CL="$SRC/deploy/netns/cluster.sh"
CHAOS="$SRC/deploy/netns/spanvm-chaos"
export SPANVM_BIN="$B" SPANVM_NETNS_TAG="$TAG" SPANVM_NETNS_OWNER=$$ SPANVM_NETNS_LEASE_MS=$LEASE \
	SPANVM_NETNS_HEARTBEAT_MS=200
D=/run/spanvm-netns/$TAG
T=$(mktemp -d /tmp/spanvm-netns-XXXXXX)
trap '"$CL" down >/dev/null 2>&1; rm -rf "$T"' EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$D"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; grep -v DBG "$f" | tail -n 12 >&2; }; done
	exit 1
}
status() { "$CL" status --json >"$T/st.json" 2>"$T/st.err" || fail "status: $(cat "$T/st.err")"; }
whole() { # what: 3 nodes running, nobody failed, every node heard again
	t0=$(ms)
	while status; sed -n 's/.*"heartbeat_age_ms": \([0-9-]*\).*/\1/p' "$T/st.json" |
		awk -v l=$((LEASE / 2)) '$1 < 0 || $1 > l {bad = 1} END {exit !bad}'; do
		[ $(($(ms) - t0)) -gt 15000 ] && { cat "$T/st.json" >&2; fail "$1: heartbeats did not resume"; }
		sleep 0.2
	done
	[ "$(grep -c '"state": "running"' "$T/st.json")" -eq 3 ] || { cat "$T/st.json" >&2; fail "$1: not 3 nodes running"; }
	grep -q "ERR coord: node [0-9]* failed" "$D/coord.log" && fail "$1: the coordinator declared a failure"
	echo "ok: $1"
}

"$CL" up 3 2>"$T/up.err" || { cat "$T/up.err" >&2; fail "cluster.sh up 3"; }
for i in 0 1 2 3; do ip netns list | grep -q "^spanvm-$TAG-h$i" || fail "namespace h$i missing"; done
whole "bring-up"
[ "$(grep -c '"peers_checked": 2' "$T/st.json")" -eq 3 ] || fail "all-to-all peer checks"
for i in 1 2 3; do
	expect_in "$D/node$i.log" "provider tcp;ofi_rxm" "node $i provider"
	[ "$(grep -c 'RMA read verified' "$D/node$i.log")" -eq 2 ] || fail "node $i verified 2 peers over RMA"
done
ip -n "spanvm-$TAG-h2" -4 addr show dev eth0 | grep -q "198.18.0.3/15" || fail "h2 address"

"$CHAOS" cut 0 2 sleep 1000 heal 0 2 2>>"$T/chaos.err" || fail "chaos"
sleep 0.5
whole "coordinator cut off from node 2 for 1 s (lease $LEASE ms)"

"$CHAOS" cut 0 2 sleep $((LEASE + 1000)) 2>>"$T/chaos.err" || fail "chaos"
status
grep -q "cut off from the coordinator" "$T/st.json" || { cat "$T/st.json" >&2; fail "status should note node 2 cut off"; }
"$CHAOS" sleep 1000 heal 0 2 2>>"$T/chaos.err"
t0=$(ms)
until status && grep -q '"id": 2,' "$T/st.json" &&
	! grep -q "cut off from the coordinator" "$T/st.json"; do
	[ $(($(ms) - t0)) -gt 15000 ] && fail "node 2 not heard again after the heal"
	sleep 0.2
done
whole "coordinator cut off from node 2 for $((LEASE + 2000)) ms (lease $LEASE ms)"

"$CHAOS" isolate 0 sleep $((LEASE + 2000)) heal-all 2>>"$T/chaos.err" || fail "chaos"
expect_in "$D/coord.log" "this coordinator is cut off; no node is declared failed" "coordinator isolation noted"
t0=$(ms)
until status && [ "$(grep -c '"state": "running"' "$T/st.json")" -eq 3 ]; do
	[ $(($(ms) - t0)) -gt 15000 ] && fail "cluster not back after the coordinator's isolation"
	sleep 0.2
done
whole "coordinator cut off from every node for $((LEASE + 2000)) ms"
for i in 1 2 3; do expect_in "$D/node$i.log" "the VM keeps running" "node $i stayed"; done

"$CHAOS" cut 1 2 sleep $((LEASE / 2)) heal 1 2 2>>"$T/chaos.err" || fail "chaos"
sleep 0.5
whole "link 1<->2 cut for $((LEASE / 2)) ms"
grep -c "Z chaos\[$TAG\]" "$D/chaos.log" >/dev/null || fail "chaos log lacks timestamps"

PIDS=$(awk '{print $2}' "$D/pids")
ip netns exec "spanvm-$TAG-h0" "$B/spanvm" stop --coord 198.18.0.1:7400 --secret-file "$D/secret" \
	2>"$T/stop.err" || { cat "$T/stop.err" >&2; fail "spanvm stop"; }
t0=$(ms)
for p in $PIDS; do
	while alive "$p"; do
		[ $(($(ms) - t0)) -gt 10000 ] && fail "process $p still running after stop"
		sleep 0.1
	done
done
for i in 1 2 3; do expect_in "$D/node$i.log" "stop: " "node $i stopped in order"; done
"$CL" down 2>/dev/null || fail "cluster.sh down"
ip netns list | grep -q "spanvm-$TAG-" && fail "namespaces left after down"
[ -e "$D" ] && fail "state dir left after down"
"$CL" down 2>/dev/null || fail "a second down must succeed (idempotent)"
echo "netns cluster test passed"
