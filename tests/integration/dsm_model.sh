#!/bin/sh
# Bounded exhaustive check of the dsm/ protocol model with spin:
#   dsm_model.sh MODEL.pml [spin -D defines...]
# Generates the verifier in a temporary directory, compiles it, runs it and
# fails unless it reports "errors: 0" (assertions: single writer, no lost
# write, no stale read; invalid end states: deadlock).  Exit 77 (skip) when
# spin or a C compiler is missing.
set -u
model=$1; shift
command -v spin >/dev/null 2>&1 || { echo "skip: spin is not installed (apt install spin)"; exit 77; }
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || { echo "skip: no C compiler"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/dsm-spin.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
cp "$model" "$dir/model.pml" && cd "$dir" || exit 1
spin -a "$@" model.pml >spin.out 2>&1 || { cat spin.out; echo "FAIL: spin -a"; exit 1; }
# -w: the generated verifier trips GCC's array-bounds heuristics (harmless)
"$cc" -w -O2 -DSAFETY -DCOLLAPSE -o pan pan.c || { echo "FAIL: compiling pan"; exit 1; }
./pan -m400000 >pan.out 2>&1
grep -E "errors:|states, stored|elapsed time|total actual memory" pan.out
if ! grep -q "errors: 0" pan.out || grep -q "Search not completed" pan.out; then
	cat pan.out
	[ -f model.pml.trail ] && spin -t -p "$@" model.pml | tail -40
	echo "FAIL: model check ($*)"
	exit 1
fi
echo "PASS: model check ($*)"
