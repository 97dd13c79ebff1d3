#!/bin/sh
# The coherence stress guest on three DSM nodes (test_multinode_dsm), its
# records verified by deploy/netns/coherence-check and the nodes' final DSM
# state by deploy/netns/dsm-audit-check (next to CHECKER).  MODE faults
# injects message drops, duplicates and reordering on every link.
# usage: deploy_coherence_multinode.sh HARNESS GUEST_ELF plain|faults CHECKER
set -u
MN=$1 ELF=$2 MODE=$3 CHECK=$4
[ -x "$MN" ] || { echo "SKIP: $MN not built (dsm layer)"; exit 77; }
[ -f "$ELF" ] || { echo "SKIP: $ELF not built (riscv64-unknown-elf-gcc missing?)"; exit 77; }
T=$(mktemp -d /tmp/spanvm-cohmn-XXXXXX)
trap 'rm -rf "$T"' EXIT
extra=""
[ "$MODE" = faults ] && extra=--faults
"$MN" "$ELF" 4 $extra --timeout 500 --audit-dir "$T" >"$T/out" 2>"$T/err"
rc=$?
"$CHECK" "$T/out" >"$T/sum.json" 2>"$T/check.err"
crc=$?
echo "3 DSM nodes ($MODE): guest exit $rc: $(cat "$T/sum.json")"
[ "$rc" -eq 0 ] || { tail -n 5 "$T/err" >&2; echo "FAIL: the guest exited $rc" >&2; exit 1; }
[ "$crc" -eq 0 ] || { cat "$T/check.err" >&2; echo "FAIL: coherence violations" >&2; exit 1; }
grep -q '"violations": 0,' "$T/sum.json" || exit 1
"$(dirname "$CHECK")/dsm-audit-check" --expect-nodes 3 "$T"/dsm-audit-node-*.txt >"$T/audit.json" \
	2>"$T/audit.err" || { cat "$T/audit.json" "$T/audit.err" >&2; echo "FAIL: DSM audit" >&2; exit 1; }
echo "DSM audit of the final state: $(cat "$T/audit.json")"
