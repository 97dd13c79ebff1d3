#!/bin/sh
# The systemd units are known to work, not just parse: each unit's
# ExecStart= line, read from deploy/systemd (not copied here), runs with its
# EnvironmentFile= from the deploy/etc/spanvm examples inside a namespace
# cluster (cluster.sh up 3 --net-only): coordinator in h0, node I in hI,
# tcp;ofi_rxm between namespaces.  Only the install paths and the example
# addresses are substituted.  vm.json keeps the example's 10.0.0.x bind
# addresses, so the nodes come up only if the env files' --bind is used.
# usage: netns_units.sh SRC BINDIR
set -u
SRC=$1 B=$2
. "$SRC/tests/integration/deploy_lib.sh"
need_netns
T=$(mktemp -d /tmp/spanvm-units-XXXXXX)
TAG=u$(($$ % 10000000))
CL="$SRC/deploy/netns/cluster.sh"
export SPANVM_BIN="$B" SPANVM_NETNS_TAG="$TAG" SPANVM_NETNS_OWNER=$$
PIDS=""
cleanup() {
	for p in $PIDS; do alive "$p" && kill -9 "$p" 2>/dev/null; done
	"$CL" down >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
	exit 1
}

"$CL" up 3 --net-only 2>"$T/up.err" || { cat "$T/up.err" >&2; fail "cluster.sh up 3 --net-only"; }

# /etc/spanvm for the namespace hosts: coordinator 10.0.0.1 -> h0 (198.18.0.1),
# node I's host 10.0.0.I -> hI (198.18.0.(I+1)) in the env files only.
ETC=$T/etc CRED=$T/cred
mkdir -p "$ETC" "$CRED"
sed -e 's/"host": "10\.0\.0\.1"/"host": "198.18.0.1"/' -e 's/"memory_mib": [0-9]*/"memory_mib": 64/' \
	"$SRC/deploy/etc/spanvm/vm.json" >"$ETC/vm.json"
sed 's/10\.0\.0\.1:7400/198.18.0.1:7400/' "$SRC/deploy/etc/spanvm/coord.env" >"$ETC/coord.env"
for i in 1 2 3; do
	sed -e "s/--bind 10\.0\.0\.$i/--bind 198.18.0.$((i + 1))/" -e 's/10\.0\.0\.1:7400/198.18.0.1:7400/' \
		"$SRC/deploy/etc/spanvm/node-$i.env" >"$ETC/node-$i.env"
done
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ETC/secret")
# what LoadCredential=secret:/etc/spanvm/secret gives the service
cp "$ETC/secret" "$CRED/secret" && chmod 400 "$CRED/secret"

U=$SRC/deploy/systemd
unit_run "$U/spanvm-coord.service" "" "$ETC" "$CRED" "spanvm-$TAG-h0" >"$T/coord.log" 2>&1 &
CPID=$!
PIDS=$CPID
for i in 1 2 3; do
	unit_run "$U/spanvm-node@.service" "$i" "$ETC" "$CRED" "spanvm-$TAG-h$i" >"$T/node$i.log" 2>&1 &
	eval NPID$i=$!
	PIDS="$PIDS $!"
done

status() {
	ip netns exec "spanvm-$TAG-h0" "$B/spanvm" status --json --coord 198.18.0.1:7400 \
		--secret-file "$ETC/secret" >"$T/st.json" 2>"$T/st.err"
}
t0=$(ms)
until status && [ "$(grep -c '"state": "running"' "$T/st.json")" -eq 3 ]; do
	[ $(($(ms) - t0)) -gt 30000 ] && { cat "$T/st.json" "$T/st.err" >&2; fail "units did not reach running"; }
	for p in $PIDS; do alive "$p" || fail "a unit's process exited during start-up"; done
	sleep 0.2
done
echo "3 nodes running from the unit ExecStart lines after $(($(ms) - t0)) ms"
[ "$(grep -c '"peers_checked": 2' "$T/st.json")" -eq 3 ] || fail "every node checked both peers"
for i in 1 2 3; do
	expect_in "$T/node$i.log" "provider tcp;ofi_rxm" "node $i provider from node-$i.env"
	grep -q "\"fabric_addr\"" "$T/st.json" || fail "status lacks fabric addresses"
done

ip netns exec "spanvm-$TAG-h0" "$B/spanvm" stop --coord 198.18.0.1:7400 --secret-file "$ETC/secret" \
	2>"$T/stop.err" || { cat "$T/stop.err" >&2; fail "spanvm stop"; }
wait "$CPID"; rc=$?
[ "$rc" -eq 0 ] || fail "spanvm-coord (unit) exited $rc after an orderly stop"
for i in 1 2 3; do
	eval p=\$NPID$i
	wait "$p"; rc=$?
	[ "$rc" -eq 0 ] || fail "spanvm-node@$i (unit) exited $rc after an orderly stop"
done
# the unit's status file (RuntimeDirectory, kept after exit): final status
"$B/spanvm" status --json --status-file "$ETC/status.pb" >"$T/final.json" 2>"$T/final.err"
rc=$?
[ "$rc" -eq 3 ] || { cat "$T/final.json" "$T/final.err" >&2; fail "status from the unit's status file: exit $rc, want 3"; }
grep -q '"phase": "stopped"' "$T/final.json" && grep -q '"final": true' "$T/final.json" ||
	{ cat "$T/final.json" >&2; fail "the unit's status file is not the final, stopped status"; }
"$CL" down 2>/dev/null || fail "cluster.sh down"
ip netns list | grep -q "spanvm-$TAG-" && fail "namespaces left after down"
echo "systemd unit ExecStart lines work in the namespace cluster"
