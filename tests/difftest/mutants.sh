#!/bin/bash
# "Shown by": build spanvm with one deliberate bug at a time (mutants.txt) in
# a scratch clone and record which guest tests and difftest seeds catch it.
#   mutants.sh SCRATCH_CLONE GUEST_ELF_DIR DIFFTEST_GEN [NAME...]
# SCRATCH_CLONE must be a throwaway git clone (its cpu/ files are edited
# and restored with git checkout).  Prints one line per mutant.
set -u
[ $# -ge 3 ] || { sed -n '2,6p' "$0"; exit 2; }
src=$1 gdir=$2 gen=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$src/.git" ] || { echo "mutants.sh: $src is not a git clone" >&2; exit 2; }
cmake -S "$src" -B "$src/b" >/dev/null || exit 2
while IFS='|' read -r name file expr <&3; do
	name=$(echo $name) file=$(echo $file) expr=$(echo "$expr" | sed 's/^ *//; s/ *$//')
	[ $# -eq 0 ] || [[ " $* " == *" $name "* ]] || continue
	(cd "$src" && git checkout -q -- cpu)
	cp "$src/$file" /tmp/mutant.orig.$$
	sed -i "$expr" "$src/$file"
	if cmp -s "$src/$file" /tmp/mutant.orig.$$; then
		echo "$name: sed did not change $file (engine changed?)"; continue
	fi
	if ! cmake --build "$src/b" -j2 --target spanvm >/dev/null 2>&1; then
		echo "$name: does not build"; continue
	fi
	caught=()
	for elf in "$gdir"/isa_*.elf "$gdir"/priv_*.elf "$gdir"/vm_*.elf "$gdir"/mp_amo.elf "$gdir"/mp_lrsc.elf "$gdir"/mp_smc.elf; do
		t=$(basename "$elf" .elf) h=1
		case $t in mp_amo|mp_lrsc) h=4 ;; mp_smc) h=2 ;; esac
		timeout 20 "$src/b/bin/spanvm" run "$elf" --harts $h --timeout 15 >/dev/null 2>&1 </dev/null || caught+=("$t")
	done
	"$here/difftest.sh" --spanvm "$src/b/bin/spanvm" --gen "$gen" --rt "$here/../../guest/rt" \
		--out /tmp/mutant_dt.$$ --seeds 1-30 --len 400 > /tmp/mutant_dt.$$.log 2>&1
	dt=$(grep -c '^MISMATCH' /tmp/mutant_dt.$$.log)
	first=$(grep -m1 -A2 '^MISMATCH' /tmp/mutant_dt.$$.log | grep -m1 'source:' | sed 's/ *source: //')
	echo "$name: caught by ${caught[*]:-NO GUEST TEST}; difftest $dt/30 seeds${first:+ (first: $first)}"
	rm -rf /tmp/mutant_dt.$$ /tmp/mutant_dt.$$.log
done 3< <(grep -v '^#' "$here/mutants.txt")
(cd "$src" && git checkout -q -- cpu)
rm -f /tmp/mutant.orig.$$
