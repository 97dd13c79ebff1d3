#!/bin/bash
# bench/cpu.sh BUILD_DIR
#
# Guest instructions per second of spanvm's engine next to QEMU TCG
# (qemu-system-riscv64 -machine spike -bios none, one hart), on the same
# self-checking workload ELFs (guest/work/*), measured back to back in the
# same run:
#   - the guest instruction count of each workload is measured once,
#     exactly, under QEMU -icount shift=0 (the guest prints minstret);
#   - wall time: best of BENCH_REPEAT (3) runs each, QEMU and spanvm
#     interleaved, every run checked for exit status 0 (a wrong result is
#     an error, not a number);
#   - start-up cost (process, VM set-up, ELF load) is the best time of the
#     empty guest on each, subtracted from that emulator's times.
# ratio_vs_qemu = (spanvm instructions/s) / (QEMU instructions/s) per
# workload; geomean_ratio_vs_qemu over all.  Writes BUILD_DIR/bench/cpu.json.
# Env: BENCH_REPEAT (3), BENCH_WORKLOADS (space-separated names, default all).
set -u
BUILD=${1:-build}
REPEAT=${BENCH_REPEAT:-3}
WORKLOADS=${BENCH_WORKLOADS:-"crc32 sort matmul sieve interp strings"}
SPANVM=$BUILD/bin/spanvm
GUESTS=$BUILD/guest
QEMU=${QEMU:-qemu-system-riscv64}
OUT=$BUILD/bench/cpu.json

die() { echo "bench/cpu.sh: $*" >&2; exit 1; }
[ -x "$SPANVM" ] || die "$SPANVM not built (run: make build)"
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-misc)"
for w in empty $(printf 'work_%s ' $WORKLOADS); do
	[ -r "$GUESTS/$w.elf" ] || die "$GUESTS/$w.elf not built (riscv64-unknown-elf-gcc missing?)"
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT='$REPEAT': expected a positive integer"
mkdir -p "$BUILD/bench" || die "cannot create $BUILD/bench"

qemu_run() { timeout 300 "$QEMU" -machine spike -nographic -bios none "$@" </dev/null; }
spanvm_run() { timeout 300 "$SPANVM" run "$1" --timeout 280 </dev/null; }

# seconds EMU ELF: wall time of one checked run
seconds() {
	local emu=$1 elf=$2 t0 t1 rc
	t0=$(date +%s%N)
	if [ "$emu" = qemu ]; then qemu_run -kernel "$elf" >/dev/null 2>&1; else spanvm_run "$elf" >/dev/null 2>&1; fi
	rc=$?
	t1=$(date +%s%N)
	[ $rc -eq 0 ] || die "$emu: $(basename "$elf") exited $rc (wrong result or crash)"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
}

min() { sort -g | head -1; }

# best-of-REPEAT times for both emulators, interleaved
best_pair() {
	local elf=$1 q=() s=()
	for ((r = 0; r < REPEAT; r++)); do
		q+=("$(seconds qemu "$elf")") || exit 1
		s+=("$(seconds spanvm "$elf")") || exit 1
	done
	echo "$(printf '%s\n' "${q[@]}" | min) $(printf '%s\n' "${s[@]}" | min)"
}

read -r q0 s0 <<<"$(best_pair "$GUESTS/empty.elf")" || exit 1
echo "start-up: qemu ${q0}s spanvm ${s0}s" >&2

entries=() ratios=()
for w in $WORKLOADS; do
	elf=$GUESTS/work_$w.elf
	n=$(qemu_run -icount shift=0 -kernel "$elf" 2>/dev/null | awk '/^instret / { print $2 }')
	[[ "$n" =~ ^[0-9]+$ ]] || die "work_$w: no instruction count from QEMU -icount"
	read -r qt st <<<"$(best_pair "$elf")" || exit 1
	line=$(awk -v n="$n" -v qt="$qt" -v st="$st" -v q0="$q0" -v s0="$s0" 'BEGIN {
		qn = qt - q0; sn = st - s0
		if (qn <= 0.001) qn = 0.001
		if (sn <= 0.001) sn = 0.001
		qi = n / qn; si = n / sn
		printf "%.4f %.1f %.1f", si / qi, qi / 1e6, si / 1e6 }')
	read -r ratio qm sm <<<"$line"
	echo "$w: $n instructions, qemu ${qt}s (${qm} MIPS), spanvm ${st}s (${sm} MIPS), ratio $ratio" >&2
	ratios+=("$ratio")
	entries+=("$(printf '"%s": {"instructions": %s, "qemu_s": %s, "spanvm_s": %s, "qemu_mips": %s, "spanvm_mips": %s, "ratio_vs_qemu": %s}' \
		"$w" "$n" "$qt" "$st" "$qm" "$sm" "$ratio")")
done

geo=$(printf '%s\n' "${ratios[@]}" | awk '{ s += log($1); n++ } END { printf "%.4f", exp(s / n) }')
# revision of the source tree BUILD was configured from
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
rev=$(git -C "${src:-$(dirname "$0")/..}" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$src" ] || git -C "$src" diff --quiet HEAD -- cpu node 2>/dev/null || rev="$rev+dirty"
qv=$("$QEMU" --version | head -1 | sed 's/"/\\"/g')
{
	printf '{\n  "bench": "cpu",\n  "git_rev": "%s",\n  "host": "%s",\n  "cpus": %s,\n' \
		"$rev" "$(hostname)" "$(nproc)"
	printf '  "date": "%s",\n  "baseline": "%s, -machine spike -bios none, TCG, 1 hart",\n' \
		"$(date -u +%FT%TZ)" "$qv"
	printf '  "method": "instructions counted once under QEMU -icount shift=0; best of %s wall-clock runs each, interleaved; empty-guest start-up subtracted",\n' "$REPEAT"
	printf '  "startup_s": {"qemu": %s, "spanvm": %s},\n' "$q0" "$s0"
	printf '  "workloads": {\n'
	for ((i = 0; i < ${#entries[@]}; i++)); do
		printf '    %s%s\n' "${entries[$i]}" "$([ $i -lt $((${#entries[@]} - 1)) ] && echo ,)"
	done
	printf '  },\n  "ratio_vs_qemu": {'
	i=0
	for w in $WORKLOADS; do
		printf '%s"%s": %s' "$([ $i -gt 0 ] && echo ', ')" "$w" "${ratios[$i]}"
		i=$((i + 1))
	done
	printf '},\n  "geomean_ratio_vs_qemu": %s\n}\n' "$geo"
} >"$OUT.tmp" && mv "$OUT.tmp" "$OUT" || die "cannot write $OUT"
cat "$OUT"
