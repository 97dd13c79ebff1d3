#!/bin/sh
# The coherence stress guest and its host-side checker, on one node for now
# (4 harts under `spanvm run`; also on QEMU, the reference, when present):
# the checker must pass on the real records and must catch a lost, a
# duplicated, a corrupted and a reordered message, stale code, a wrong AMO
# counter, inconsistent lock-protected data and records cut short.  Across
# nodes (DSM) it will run from `make soak` once spanvm runs one guest on
# several nodes.
# usage: deploy_coherence.sh SRC BINDIR GUEST_ELF
set -u
SRC=$1 B=$2 ELF=$3
CHECK=$SRC/deploy/netns/coherence-check
T=$(mktemp -d /tmp/spanvm-coh-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -f "$ELF" ] || { echo "SKIP: $ELF not built (riscv64-unknown-elf-gcc missing?)"; exit 77; }

"$B/spanvm" run "$ELF" --harts 4 --timeout 120 >"$T/run.out" 2>"$T/run.err" ||
	{ tail -5 "$T/run.err" >&2; fail "spanvm run of the stress guest exited $?"; }
"$CHECK" "$T/run.out" >"$T/sum.json" 2>"$T/check.err" ||
	{ cat "$T/sum.json" "$T/check.err" >&2; fail "checker rejects the spanvm run"; }
echo "spanvm run: $(cat "$T/sum.json")"
grep -q '"violations": 0' "$T/sum.json" || fail "summary lacks violations 0"
if command -v qemu-system-riscv64 >/dev/null; then
	timeout 120 qemu-system-riscv64 -machine spike -smp 4 -nographic -bios none -kernel "$ELF" \
		>"$T/qemu.out" 2>&1 || fail "the stress guest fails on QEMU (exit $?)"
	"$CHECK" "$T/qemu.out" >"$T/q.json" 2>&1 || { cat "$T/q.json" >&2; fail "checker rejects the QEMU run"; }
fi

# The checker must bite: each mutation of the real records is caught.
mutant() { # name field sed-script
	sed "$3" "$T/run.out" >"$T/m.out"
	cmp -s "$T/m.out" "$T/run.out" && fail "mutation '$1' changed nothing (records format changed?)"
	"$CHECK" "$T/m.out" >"$T/m.json" 2>/dev/null && fail "checker accepted: $1"
	grep -q "\"$2\": [1-9]" "$T/m.json" || { cat "$T/m.json" >&2; fail "mutation '$1' not counted as $2"; }
	echo "ok: checker catches $1"
}
mutant "a lost message" lost '/^COH rx 2 1 17 0$/d'
mutant "a duplicated message" duplicated 's/^\(COH rx 2 1 17 0\)$/\1\n\1/'
mutant "a corrupted payload" bad_payload 's/^COH rx 3 2 5 0$/COH rx 3 2 5 1/'
mutant "messages out of order" reordered '/^COH rx 1 0 9 0$/{h;d};/^COH rx 1 0 10 0$/G'
mutant "stale code" stale_code 's/^\(COH smc 1 6 \).*/\10x1234/'
mutant "a lost AMO" counter_errors 's/^\(COH final amo=\)\([0-9]*\)/\1123/'
mutant "inconsistent protected data" lock_errors 's/^\(COH final amo=[0-9]* a=\)\([0-9]*\)/\17/'
head -n 50 "$T/run.out" >"$T/m.out"
"$CHECK" "$T/m.out" >"$T/m.json" 2>/dev/null && fail "checker accepted records cut short"
grep -q '"error"' "$T/m.json" || fail "records cut short not reported as an error"
echo "coherence guest and checker passed"
