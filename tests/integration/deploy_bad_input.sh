#!/bin/sh
# Bad operator input through the systemd units' ExecStart lines (run as
# systemd would, paths substituted): unknown node id in the unit instance,
# a non-numeric instance, a missing or unreadable secret, a secret others
# can read, a config missing a key.  Each gives a clear message naming the
# problem and a non-zero exit, and nothing half-starts: a refused
# coordinator never listens, a refused node never joins.
# usage: deploy_bad_input.sh SRC BINDIR
set -u
SRC=$1 B=$2
. "$SRC/tests/integration/deploy_lib.sh"
T=$(mktemp -d /tmp/spanvm-badin-XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do alive "$p" && kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
U=$SRC/deploy/systemd
PORT=$((20000 + $$ % 30000))

mk_etc() { # dir: a good /etc/spanvm on 127.0.0.1
	mkdir -p "$1/cred"
	sed -e "s/\"host\": \"10\.0\.0\.1\", \"port\": 7400/\"host\": \"127.0.0.1\", \"port\": $PORT/" \
		-e 's/"bind": "10\.0\.0\.[0-9]*", "port": 7401/"bind": "127.0.0.1", "port": 0/' \
		-e 's/"memory_mib": [0-9]*/"memory_mib": 16/' "$SRC/deploy/etc/spanvm/vm.json" >"$1/vm.json"
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1/secret")
	cp "$1/secret" "$1/cred/secret"
	printf 'SPANVM_PROVIDER="tcp;ofi_rxm"\n' >"$1/node-1.env"
}
expect_fail() { # what want-rc text: runs the rest of the line, checks rc and stderr
	what=$1 want=$2 text=$3
	shift 3
	"$@" >"$T/out" 2>"$T/err" &
	p=$!
	(sleep 10 && kill -9 "$p" 2>/dev/null) &
	w=$!
	wait "$p"
	rc=$?
	kill "$w" 2>/dev/null; wait "$w" 2>/dev/null
	[ "$rc" -eq 137 ] && fail "$what: still running after 10 s (should have refused)"
	[ "$rc" -eq "$want" ] || { cat "$T/err" >&2; fail "$what: exit $rc, want $want"; }
	grep -qF -- "$text" "$T/err" || { cat "$T/err" >&2; fail "$what: stderr lacks '$text'"; }
	echo "ok: $what -> exit $rc: $(head -n 1 "$T/err")"
}
G=$T/good
mk_etc "$G"
grep -q "127.0.0.1\", \"port\": $PORT" "$G/vm.json" || fail "example vm.json no longer matches this test's sed"

# --- node side, before any coordinator exists
expect_fail "unknown node id in the unit instance" 1 "node id 7 is not listed in $G/vm.json" \
	unit_run "$U/spanvm-node@.service" 7 "$G" "$G/cred"
expect_fail "non-numeric unit instance" 2 "--node-id 'db1' is not a number" \
	unit_run "$U/spanvm-node@.service" db1 "$G" "$G/cred"

# --- secrets
rm -f "$T/nocred/secret"; mkdir -p "$T/nocred"
expect_fail "missing secret (coordinator)" 1 "$T/nocred/secret" \
	unit_run "$U/spanvm-coord.service" "" "$G" "$T/nocred"
expect_fail "missing secret (node)" 1 "$T/nocred/secret" \
	unit_run "$U/spanvm-node@.service" 1 "$G" "$T/nocred"
mkdir -p "$T/dircred/secret"
expect_fail "secret is a directory" 1 "$T/dircred/secret" \
	unit_run "$U/spanvm-coord.service" "" "$G" "$T/dircred"
mkdir -p "$T/unread" && cp "$G/secret" "$T/unread/secret" && chmod 000 "$T/unread/secret"
if [ "$(id -u)" -ne 0 ]; then
	expect_fail "unreadable secret" 1 "Permission denied" \
		unit_run "$U/spanvm-coord.service" "" "$G" "$T/unread"
elif command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	# root reads a mode-000 file anyway: run as an unprivileged user, as the
	# units do (User=spanvm), so the mode bites
	chmod 711 "$T" "$T/unread" && chmod 755 "$G" && chmod 644 "$G/vm.json"
	as_nobody() { # unit instance cred
		setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c \
			". '$SRC/tests/integration/deploy_lib.sh'; B='$B'; unit_run '$1' '$2' '$G' '$3'"
	}
	expect_fail "unreadable secret (coordinator, as nobody)" 1 "Permission denied" \
		as_nobody "$U/spanvm-coord.service" "" "$T/unread"
	expect_fail "unreadable secret (node, as nobody)" 1 "Permission denied" \
		as_nobody "$U/spanvm-node@.service" 1 "$T/unread"
else
	echo "note: running as root without setpriv: the unreadable-secret case is not tested"
fi
for mode in 644 640 604; do
	mkdir -p "$T/m$mode" && cp "$G/secret" "$T/m$mode/secret" && chmod "$mode" "$T/m$mode/secret"
	expect_fail "secret mode $mode (coordinator)" 1 "chmod 600" \
		unit_run "$U/spanvm-coord.service" "" "$G" "$T/m$mode"
	expect_fail "secret mode $mode (node)" 1 "chmod 600" \
		unit_run "$U/spanvm-node@.service" 1 "$G" "$T/m$mode"
done

# --- config missing a required key
for case in "vm.name:s/\"name\": \"span3\", //" "vm.memory_mib:s/\"memory_mib\": 16, //"; do
	key=${case%%:*}
	E=$T/etc-$key
	mk_etc "$E"
	sed -i "${case#*:}" "$E/vm.json"
	expect_fail "config without $key (coordinator)" 1 "$key" \
		unit_run "$U/spanvm-coord.service" "" "$E" "$E/cred"
	expect_fail "config without $key (node)" 1 "$key" \
		unit_run "$U/spanvm-node@.service" 1 "$E" "$E/cred"
done

# --- the coordinator's status file (spanvm status reads it once the
# coordinator is gone) in a directory that does not exist: refused at start
expect_fail "status file in a missing directory" 1 "cannot write status file $T/nodir/st" \
	"$B/spanvm-coord" --config "$G/vm.json" --secret-file "$G/secret" --status-file "$T/nodir/st"

# --- nothing half-started: none of the refused coordinators listens, and
# a refused node never joins a coordinator that runs
if command -v ss >/dev/null; then
	ss -ltn | grep -q "127.0.0.1:$PORT " && fail "something listens on $PORT after refusals"
fi
unit_run "$U/spanvm-coord.service" "" "$G" "$G/cred" >"$T/coord.log" 2>&1 &
CPID=$!
PIDS=$CPID
t0=$(ms)
until "$B/spanvm" status --json --coord "127.0.0.1:$PORT" --secret-file "$G/secret" >"$T/st.json" 2>/dev/null; do
	[ $(($(ms) - t0)) -gt 10000 ] && fail "coordinator unit did not come up: $(cat "$T/coord.log")"
	alive "$CPID" || fail "coordinator unit exited: $(cat "$T/coord.log")"
	sleep 0.1
done
expect_fail "node with a group-readable secret against a running coordinator" 1 "chmod 600" \
	unit_run "$U/spanvm-node@.service" 1 "$G" "$T/m640"
mkdir -p "$T/wrong" && (umask 077 && echo wrong-secret-but-long-enough-0000 >"$T/wrong/secret")
expect_fail "node with the wrong secret" 1 "wrong cluster secret" \
	unit_run "$U/spanvm-node@.service" 1 "$G" "$T/wrong"
"$B/spanvm" status --json --coord "127.0.0.1:$PORT" --secret-file "$G/secret" >"$T/st.json" ||
	fail "status after refusals"
grep -q '"phase": "join"' "$T/st.json" || { cat "$T/st.json" >&2; fail "coordinator left the join phase"; }
grep -q '"connected": true' "$T/st.json" && { cat "$T/st.json" >&2; fail "a refused node counts as joined"; }
kill -TERM "$CPID"
wait "$CPID"
alive "$CPID" && fail "coordinator did not exit on SIGTERM"
echo "bad operator input: every case refused with a clear message"
