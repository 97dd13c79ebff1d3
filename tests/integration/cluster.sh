#!/bin/sh
# Multi-process cluster test on 127.0.0.1: coordinator + 3 nodes through the
# real binaries.  Join, all-to-all peer checks, status JSON, operator
# mistakes (wrong secret, unknown node id, duplicate join, bad config), a
# node killed (declared failed at once) and a node frozen (declared failed
# after the lease), orderly stop, and no process left behind.
#
# usage: cluster.sh BINDIR     (ports are ephemeral: parallel runs don't collide)
set -u
B="$1"
T=$(mktemp -d /tmp/spanvm-cluster-XXXXXX)
export SPANVM_RUN_DIR="$T/run"
LEASE=2000
ALL_PIDS=""

alive() { # pid -> 0 if it runs (zombies count as gone: our init may not reap)
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$st" != Z ] && [ "$st" != X ]
}
cleanup() {
	for p in $ALL_PIDS; do alive "$p" && kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
fail() {
	echo "FAIL: $*" >&2
	for f in "$SPANVM_RUN_DIR"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
	cleanup
	exit 1
}
ms() { echo $(($(date +%s%N) / 1000000)); }
expect_in() { # file text what
	grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$3: expected '$2'"; }
}
count() { grep -c -- "$2" "$1"; }
status_json() { "$B/spanvm" status --json >"$T/st.json" 2>"$T/st.err" || fail "status: $(cat "$T/st.err")"; }
wait_state() { # node state timeout_ms -> prints elapsed ms
	t0=$(ms)
	while :; do
		status_json
		# the node objects are printed in config order, "id" first, "state" next
		if sed -n "/\"id\": $1,/{n;p;}" "$T/st.json" | grep -q "\"state\": \"$2\""; then
			echo $(($(ms) - t0)); return 0
		fi
		[ $(($(ms) - t0)) -gt "$3" ] && return 1
		sleep 0.05
	done
}
no_test_processes() { # nothing whose command line mentions our temp dir
	ps -eo pid=,stat=,args= | grep -F "$T" | grep -v -e grep -e ' Z' >"$T/ps.txt"
	[ ! -s "$T/ps.txt" ] || { cat "$T/ps.txt" >&2; return 1; }
}

cat >"$T/vm.json" <<EOF
{ "version": 1,
  "vm": { "name": "itest", "memory_mib": 64, "vcpus": 3 },
  "cluster": { "coordinator": { "host": "127.0.0.1", "port": 0 },
               "heartbeat_ms": 100, "lease_ms": $LEASE, "on_node_failure": "continue" },
  "nodes": [ { "id": 1, "vcpus": [0] }, { "id": 2, "vcpus": [1] }, { "id": 3, "vcpus": [2] } ] }
EOF

# --- bad config: clear message naming the key, non-zero exit, nothing runs
sed 's/"memory_mib": 64, //' "$T/vm.json" >"$T/bad.json"
"$B/spanvm" launch "$T/bad.json" --detach >"$T/out" 2>"$T/err"
[ $? -eq 1 ] || fail "launch with a config missing vm.memory_mib should exit 1"
expect_in "$T/err" "vm.memory_mib: missing" "bad config message"
no_test_processes || fail "processes left after a rejected config"
"$B/spanvm" launch >/dev/null 2>&1; [ $? -eq 2 ] || fail "launch without CONFIG should exit 2"

# --- launch, join, all-to-all checks
"$B/spanvm" launch "$T/vm.json" --detach >"$T/launch.out" 2>"$T/launch.err" ||
	{ cat "$T/launch.err" >&2; fail "launch --detach"; }
expect_in "$T/launch.err" "node 3 passed 2/2 peer checks" "launch progress"
expect_in "$T/launch.out" "phase running" "membership printed"
RUN="$SPANVM_RUN_DIR"
COORD=$(cat "$RUN/coord.addr")
CPID=$(sed -n 's/.*"coordinator": \([0-9][0-9]*\).*/\1/p' "$RUN/cluster.json")
NPIDS=$(sed -n 's/^ *"[0-9][0-9]*": \([0-9][0-9]*\).*/\1/p' "$RUN/cluster.json")
ALL_PIDS="$CPID $NPIDS"
set -- $NPIDS
N1=$1 N2=$2 N3=$3
[ -n "$CPID" ] && [ -n "$N3" ] || fail "pids missing from $RUN/cluster.json"
for p in $ALL_PIDS; do alive "$p" || fail "process $p not running after launch"; done

status_json
[ "$(count "$T/st.json" '"state": "running"')" -eq 3 ] || { cat "$T/st.json"; fail "3 nodes running"; }
[ "$(count "$T/st.json" '"peers_checked": 2')" -eq 3 ] || fail "every node checked both peers"
"$B/spanvm" launch "$T/vm.json" --detach >/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "a second launch in the same runtime dir should fail"
expect_in "$T/err" "already running" "second launch"

# --- operator mistakes against the running cluster
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/wrong"; chmod 600 "$T/wrong"
"$B/spanvm-node" --config "$T/vm.json" --node-id 2 --coord "$COORD" --secret-file "$T/wrong" \
	>/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "node with a wrong secret should exit 1"
expect_in "$T/err" "wrong cluster secret" "wrong secret (node side)"
expect_in "$RUN/coord.log" "authentication failed: wrong cluster secret" "wrong secret (coordinator side)"
"$B/spanvm" status --coord "$COORD" --secret-file "$T/wrong" >/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "status with a wrong secret should exit 1"
expect_in "$T/err" "wrong cluster secret" "wrong secret (client)"

sed 's/"id": 3, "vcpus": \[2\]/"id": 9, "vcpus": [2]/' "$T/vm.json" >"$T/vm9.json"
"$B/spanvm-node" --config "$T/vm9.json" --node-id 9 --coord "$COORD" --secret-file "$RUN/secret" \
	>/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "unknown node id should exit 1"
expect_in "$T/err" "node id 9 is not in the cluster config (configured: 1, 2, 3)" "unknown id"
"$B/spanvm-node" --config "$T/vm.json" --node-id 9 --coord "$COORD" --secret-file "$RUN/secret" \
	>/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "node id missing from its own config should exit 1"
expect_in "$T/err" "node id 9 is not listed in" "unknown id (node side)"

"$B/spanvm-node" --config "$T/vm.json" --node-id 2 --coord "$COORD" --secret-file "$RUN/secret" \
	>/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "duplicate join should exit 1"
expect_in "$T/err" "duplicate join refused" "duplicate join"
"$B/spanvm-node" --config "$T/vm.json" >/dev/null 2>&1; [ $? -eq 2 ] || fail "node usage error should exit 2"

status_json
[ "$(count "$T/st.json" '"state": "running"')" -eq 3 ] || fail "rejections disturbed the cluster"

# --- a killed node is declared failed (its connection drops), within the lease
kill -9 "$N3"
el=$(wait_state 3 failed $LEASE) || fail "node 3 not declared failed within ${LEASE} ms"
echo "killed node 3 declared failed after ${el} ms"
sleep 0.3
expect_in "$RUN/node1.log" "node 3 failed" "survivors told about node 3"

# --- a frozen node (no heartbeats, connection open) is failed after the lease
kill -STOP "$N2"
el=$(wait_state 2 failed $((LEASE + 1500))) || fail "frozen node 2 not declared failed"
echo "frozen node 2 declared failed after ${el} ms (lease ${LEASE} ms)"
[ "$el" -ge $((LEASE / 2)) ] || fail "node 2 failed too early (${el} ms < lease)"
grep -q '"reason": "no heartbeat for' "$T/st.json" || fail "lease failure reason"
kill -9 "$N2"; kill -CONT "$N2" 2>/dev/null
status_json
grep -q '"state": "running"' "$T/st.json" || fail "node 1 should still run"

# --- orderly stop; nothing left behind
"$B/spanvm" stop 2>"$T/err" || { cat "$T/err" >&2; fail "spanvm stop"; }
for p in $ALL_PIDS; do alive "$p" && fail "process $p still running after stop"; done
[ ! -e "$RUN/cluster.json" ] || fail "runtime dir not cleared"
"$B/spanvm" status >/dev/null 2>"$T/err"; [ $? -eq 1 ] || fail "status without a cluster should exit 1"
expect_in "$T/err" "no cluster launched" "status without a cluster"

# --- a secret file others can read is refused before anything starts
printf '0123456789abcdef0123\n' >"$T/open.secret"; chmod 644 "$T/open.secret"
sed 's|"heartbeat_ms"|"secret_file": "open.secret", "heartbeat_ms"|' "$T/vm.json" >"$T/open.json"
"$B/spanvm" launch "$T/open.json" --detach >/dev/null 2>"$T/err"
[ $? -eq 1 ] || fail "launch with a world-readable secret should exit 1"
expect_in "$T/err" "chmod 600" "world-readable secret"
no_test_processes || fail "processes left after a refused secret"

# --- a frozen coordinator (as good as cut off) does not stop a healthy VM:
# nodes stay while their peers answer (docs/deploy.md, partition rules);
# a dead coordinator (connection closed) makes every node leave
"$B/spanvm" launch "$T/vm.json" --detach >/dev/null 2>"$T/err" || { cat "$T/err" >&2; fail "relaunch"; }
CPID=$(sed -n 's/.*"coordinator": \([0-9][0-9]*\).*/\1/p' "$RUN/cluster.json")
NPIDS=$(sed -n 's/^ *"[0-9][0-9]*": \([0-9][0-9]*\).*/\1/p' "$RUN/cluster.json")
ALL_PIDS="$CPID $NPIDS"
kill -STOP "$CPID"
sleep $(((LEASE + 1500) / 1000)).5
for p in $NPIDS; do alive "$p" || fail "node $p left although only the coordinator was silent"; done
expect_in "$RUN/node1.log" "every peer answers: the VM keeps running" "node stays with a silent coordinator"
kill -CONT "$CPID"
wait_state 1 running 3000 >/dev/null || fail "cluster not running after the coordinator came back"
[ "$(count "$T/st.json" '"state": "running"')" -eq 3 ] || { cat "$T/st.json"; fail "3 nodes running after the coordinator came back"; }
kill -9 "$CPID"
t0=$(ms)
for p in $NPIDS; do
	while alive "$p"; do
		[ $(($(ms) - t0)) -gt $((LEASE + 3000)) ] && fail "node $p outlived a dead coordinator"
		sleep 0.05
	done
done
expect_in "$RUN/node1.log" "closed by the coordinator" "node reason for leaving"
"$B/spanvm" stop >/dev/null 2>&1 && fail "stop of a dead cluster should fail"

# --- foreground launch, Ctrl-C (SIGINT) is an orderly stop
"$B/spanvm" launch "$T/vm.json" >"$T/fg.out" 2>"$T/fg.err" &
LPID=$!
ALL_PIDS="$LPID"
t0=$(ms)
until grep -q "all 3 nodes running" "$T/fg.err" 2>/dev/null; do
	[ $(($(ms) - t0)) -gt 20000 ] && fail "foreground launch did not come up"
	alive "$LPID" || { cat "$T/fg.err" >&2; fail "foreground launch exited early"; }
	sleep 0.1
done
ALL_PIDS="$LPID $(sed -n 's/.*"coordinator": \([0-9][0-9]*\).*/\1/p;s/^ *"[0-9][0-9]*": \([0-9][0-9]*\).*/\1/p' "$RUN/cluster.json")"
kill -INT "$LPID"
wait "$LPID"; rc=$?
[ $rc -eq 0 ] || { cat "$T/fg.err" >&2; fail "foreground launch exited $rc after SIGINT"; }
expect_in "$T/fg.err" "cluster stopped" "foreground stop"
for p in $ALL_PIDS; do alive "$p" && fail "process $p still running after Ctrl-C"; done
no_test_processes || fail "processes left behind"

echo "cluster integration test passed"
rm -rf "$T"
exit 0
