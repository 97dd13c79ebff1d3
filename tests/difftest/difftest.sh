#!/bin/bash
# Differential testing of spanvm against qemu-system-riscv64 (-machine spike).
#
#   difftest.sh --spanvm BIN --gen DIFFTEST_GEN --rt GUEST_RT_DIR --out DIR
#               [--seeds A-B] [--len K] [--qemu QEMU] [--guests ELF_DIR]
#
# For each seed: difftest_gen writes a random RV64IMAC program, the cross
# compiler builds it with the guest runtime, both emulators run it and
# their register/memory dumps are compared.  On a mismatch the program is
# regenerated with only its first k instructions and bisected to the first
# instruction after which the dumps differ; the report gives its index, its
# source line, its disassembly and both dumps.  --guests also runs every
# *.elf in ELF_DIR (isa_/priv_/vm_ tests) on both and compares exit codes.
# Exit status: 0 = no mismatch, 1 = mismatches, 2 = usage or set-up error.
set -u
spanvm= gen= rt= out= seeds=1-30 len=400 qemu=qemu-system-riscv64 guests=
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case "$1" in
	--spanvm) spanvm=$2; shift 2 ;;
	--gen) gen=$2; shift 2 ;;
	--rt) rt=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--seeds) seeds=$2; shift 2 ;;
	--len) len=$2; shift 2 ;;
	--qemu) qemu=$2; shift 2 ;;
	--guests) guests=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "difftest.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
done
for v in spanvm gen rt out; do
	[ -n "${!v}" ] || { echo "difftest.sh: --$v is required" >&2; exit 2; }
done
[[ "$seeds" =~ ^([0-9]+)-([0-9]+)$ ]] || { echo "difftest.sh: --seeds '$seeds': expected A-B" >&2; exit 2; }
first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
[[ "$len" =~ ^[0-9]+$ ]] || { echo "difftest.sh: --len '$len': expected a number" >&2; exit 2; }
cc=riscv64-unknown-elf-gcc objdump=riscv64-unknown-elf-objdump
for tool in "$cc" "$objdump" "$qemu" "$spanvm" "$gen"; do
	command -v "$tool" >/dev/null || { echo "difftest.sh: '$tool' not found" >&2; exit 2; }
done
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out" || exit 2
flags=(-march=rv64imac_zicsr_zifencei -mabi=lp64 -mcmodel=medany -nostdlib -ffreestanding -O2
       -I"$rt" -T "$rt/link.ld" -Wl,--no-warn-rwx-segments)

# the runtime and dump code, compiled once
objs=()
for src in "$rt"/crt0.S "$rt"/trap.S "$rt"/rt.c "$rt"/printf.c "$rt"/vm.c "$here"/dump.S "$here"/dump.c; do
	o="$out/rt_$(basename "$src").o"
	"$cc" "${flags[@]}" -c -o "$o" "$src" || { echo "difftest.sh: cannot compile $src" >&2; exit 2; }
	objs+=("$o")
done

build() { # seed prefix -> $out/s<seed>_p<prefix>.elf
	local base="$out/s$1_p$2"
	"$gen" --seed "$1" --len "$len" --prefix "$2" -o "$base.S" &&
		"$cc" "${flags[@]}" -o "$base.elf" "${objs[@]}" "$base.S"
}
run_both() { # elf -> $elf.qemu / $elf.spanvm (output + exit line)
	local elf=$1
	timeout 10 "$qemu" -machine spike -nographic -bios none -kernel "$elf" >"$elf.qemu" 2>&1 </dev/null
	echo "exit=$?" >>"$elf.qemu"
	timeout 10 "$spanvm" run "$elf" --timeout 8 >"$elf.spanvm" 2>&1 </dev/null
	echo "exit=$?" >>"$elf.spanvm"
	cmp -s "$elf.qemu" "$elf.spanvm"
}
differs() { # seed prefix -> 0 if the dumps differ
	build "$1" "$2" || return 2
	! run_both "$out/s$1_p$2.elf"
}

mismatches=0 total=0
for ((s = first; s <= last; s++)); do
	total=$((total + 1))
	build "$s" "$len" || { echo "seed $s: build failed" >&2; mismatches=$((mismatches + 1)); continue; }
	elf="$out/s${s}_p$len.elf"
	if run_both "$elf"; then
		rm -f "$out/s${s}_p$len".*
		continue
	fi
	mismatches=$((mismatches + 1))
	# bisect on the prefix length: prefix lo matches, prefix hi differs
	lo=0 hi=$len
	if differs "$s" 0; then hi=0; fi
	while [ $((hi - lo)) -gt 1 ]; do
		mid=$(((lo + hi) / 2))
		if differs "$s" "$mid"; then hi=$mid; else lo=$mid; fi
	done
	idx=$((hi - 1))
	echo "MISMATCH seed $s (len $len): first differing instruction #$idx"
	if [ "$hi" -gt 0 ]; then
		build "$s" "$hi" >/dev/null 2>&1; run_both "$out/s${s}_p$hi.elf"
		echo "  source: $(grep -A1 "^dt_i$idx:" "$out/s${s}_p$hi.S" | tail -1 | sed 's/^\t//')"
		addr=$(riscv64-unknown-elf-nm "$out/s${s}_p$hi.elf" | awk -v s="dt_i$idx" '$3 == s { print $1 }')
		nxt=$(riscv64-unknown-elf-nm "$out/s${s}_p$hi.elf" | awk -v s="dt_end" '$3 == s { print $1 }')
		echo "  disassembly:"
		"$objdump" -d --start-address=0x$addr --stop-address=0x$nxt "$out/s${s}_p$hi.elf" |
			grep -E '^ +[0-9a-f]+:' | sed 's/^/    /'
		echo "  dumps (qemu | spanvm), differing lines:"
		diff "$out/s${s}_p$hi.elf.qemu" "$out/s${s}_p$hi.elf.spanvm" | grep '^[<>]' | sed 's/^/    /'
	else
		echo "  differs before any random instruction (set-up or dump):"
		diff "$out/s${s}_p0.elf.qemu" "$out/s${s}_p0.elf.spanvm" | head -20 | sed 's/^/    /'
	fi
done

gfail=0 gtotal=0
if [ -n "$guests" ]; then
	for elf in "$guests"/isa_*.elf "$guests"/priv_*.elf "$guests"/vm_*.elf; do
		[ -f "$elf" ] || continue
		gtotal=$((gtotal + 1))
		timeout 60 "$qemu" -machine spike -nographic -bios none -kernel "$elf" >/dev/null 2>&1 </dev/null; q=$?
		timeout 60 "$spanvm" run "$elf" --timeout 50 >/dev/null 2>&1 </dev/null; v=$?
		if [ "$q" != 0 ] || [ "$v" != 0 ]; then
			echo "GUEST $(basename "$elf"): qemu exit $q, spanvm exit $v"
			gfail=$((gfail + 1))
		fi
	done
fi
echo "difftest: $total random programs of $len instructions, $mismatches mismatching;" \
     "$gtotal hand-written guests, $gfail failing"
[ "$mismatches" -eq 0 ] && [ "$gfail" -eq 0 ]
