#!/bin/sh
# deploy/netns/dsm-audit-check on a coherent set of DSM audit dumps (3
# nodes, interleaved homes: page p's home is node p % 3 + 1) and on copies
# of it with one defect each: every kind of violation must be caught and
# named, and the clean set must pass.  (Real dumps are checked by
# netns.partition_coherence and the soak.)
# usage: deploy_audit_check.sh SRC
set -u
CHECK=$1/deploy/netns/dsm-audit-check
T=$(mktemp -d /tmp/spanvm-audit-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# page 0: Modified on node 2 (home 1); page 1: Shared on 1 and 3, owner 3
# (home 2); page 2: a zero page read by its home 3; page 3: Modified on
# its home 1; page 4: Shared on 2 only, owner 2 (home 2).
mk() {
	mkdir -p "$1"
	cat >"$1/n1" <<EOF
audit node=1 nodes=1,2,3 base=0x80000000 pages=64 busy=0
L 1 S 3 2
L 3 M 7 1
D 0 2 1 2 5
D 3 1 1 1 7
end
EOF
	cat >"$1/n2" <<EOF
audit node=2 nodes=1,2,3 base=0x80000000 pages=64 busy=0
L 0 M 5 1
L 4 S 2 2
D 1 3 0 1,3 4
D 4 2 0 2 2
end
EOF
	cat >"$1/n3" <<EOF
audit node=3 nodes=1,2,3 base=0x80000000 pages=64 busy=0
L 1 S 4 2
L 2 S 1 3
D 2 -1 0 3 1
end
EOF
}

mk "$T/ok"
"$CHECK" --expect-nodes 3 "$T"/ok/n* >"$T/ok.json" 2>"$T/ok.err" ||
	{ cat "$T/ok.json" "$T/ok.err" >&2; fail "a coherent set of dumps was refused"; }
grep -q '"violations": 0,.*"ok": true' "$T/ok.json" || fail "clean summary: $(cat "$T/ok.json")"
grep -q '"pages": 5, "copies": 6,' "$T/ok.json" || fail "clean counts: $(cat "$T/ok.json")"

# bad NAME KIND FILE SED-SCRIPT [APPEND-LINE]: a copy with one defect must
# fail with KIND counted and named on stderr.
bad() {
	d=$T/$1
	mk "$d"
	sed -i "$4" "$d/$3"
	if [ -n "${5:-}" ]; then
		sed -i '$d' "$d/$3"
		printf '%s\nend\n' "$5" >>"$d/$3"
	fi
	if "$CHECK" --expect-nodes 3 "$d"/n* >"$d/out.json" 2>"$d/err"; then
		fail "$1: not caught ($(cat "$d/out.json"))"
	fi
	grep -q "\"$2\": [1-9]" "$d/out.json" || fail "$1: kind $2 not counted: $(cat "$d/out.json")"
	grep -q "^dsm-audit-check: $2: " "$d/err" || fail "$1: no '$2' message: $(cat "$d/err")"
	echo "caught $1: $(head -n 1 "$d/err")"
}
bad no_directory owner n1 '/^D 0 /d'
bad two_directories owner n3 '' 'D 0 2 1 2 5'
bad wrong_home owner n2 's/^L 0 M 5 1$/L 0 M 5 3/'
bad modified_not_owner modified n1 's/^D 0 2 1 2 5$/D 0 3 1 2,3 5/'
bad excl_without_modified modified n2 's/^D 4 2 0 2 2$/D 4 2 1 2 2/'
bad modified_and_shared exclusive n3 '' 'L 0 S 5 1'
bad modified_twice exclusive n2 '' 'L 3 M 7 1'
bad copy_not_in_copyset copyset n2 's/^D 1 3 0 1,3 4$/D 1 3 0 3 4/'
bad copy_newer_than_directory version n1 's/^L 1 S 3 2$/L 1 S 9 2/'
bad modified_version version n2 's/^L 0 M 5 1$/L 0 M 4 1/'
bad busy busy n2 's/busy=0$/busy=1 why=home-txn:4/'
bad truncated format n3 '/^end$/d'
bad garbage format n1 's/^L 3 M 7 1$/L 3 X 7 1/'
# a copyset member without a copy: a read grant that was lost (they are not
# acknowledged) is counted, not a violation
mk "$T/extra"
sed -i 's/^D 1 3 0 1,3 4$/D 1 3 0 1,2,3 4/' "$T/extra/n2"
"$CHECK" --expect-nodes 3 "$T"/extra/n* >"$T/extra.json" 2>"$T/extra.err" ||
	fail "a copyset member without a copy was refused: $(cat "$T/extra.json" "$T/extra.err")"
grep -q '"copyset_extra": 1, "ok": true' "$T/extra.json" || fail "copyset_extra: $(cat "$T/extra.json")"
grep -q '"copyset_extra": 0, "ok": true' "$T/ok.json" || fail "clean copyset_extra: $(cat "$T/ok.json")"
# a node's dump missing entirely
mk "$T/missing"
if "$CHECK" --expect-nodes 3 "$T"/missing/n1 "$T"/missing/n2 >"$T/m.json" 2>/dev/null; then
	fail "a missing node dump was not caught"
fi
grep -q '"format": 1' "$T/m.json" || fail "missing dump: $(cat "$T/m.json")"
echo "dsm-audit-check: clean set passes, every defect caught"
