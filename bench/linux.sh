#!/bin/sh
# bench/linux.sh BUILD_DIR
#
# Boot time of the Linux guest (BUILD_DIR/guest-linux: Image + the test
# initramfs) on spanvm, one node, next to qemu-system-riscv64 -machine virt
# (OpenSBI from -bios default) on the same Image, initrd and hart count,
# measured in the same run and interleaved over rounds so machine noise hits
# both alike.  Two times per boot, from process start:
#   first_line_s  the init's first line ("init: start, N harts") on stdout
#   poweroff_s    the process exit after the guest's SBI power-off
# Medians over rounds.  Then the multi-node boot: 4 harts over 3 local
# node processes (`spanvm launch`, harts 0,1 | 2 | 3) against `spanvm run`
# with the same 4 harts on one node, interleaved the same way
# (boot_ratio_3node_vs_1node; BENCH_ROUNDS3 rounds, slow: every page the
# harts of other nodes touch is a DSM transaction).
#
# Writes BUILD_DIR/bench/linux.json.  Env: BENCH_ROUNDS (5), BENCH_HARTS (2),
# BENCH_ROUNDS3 (1; 0 skips the 3-node part: ratio null), BENCH_TIMEOUT3
# (900 s per 3-node boot).
set -eu

BUILD=${1:-build}
ROUNDS=${BENCH_ROUNDS:-5}
HARTS=${BENCH_HARTS:-2}
ROUNDS3=${BENCH_ROUNDS3:-1}
TIMEOUT3=${BENCH_TIMEOUT3:-900}
G=$BUILD/guest-linux
SPANVM=$BUILD/bin/spanvm
OUT=$BUILD/bench/linux.json
APPEND="console=ttyS0"
# the 3-node comparison runs the init's short workload (1/20 of the steps)
# on both sides: its shared counter moves between nodes at every step
APPEND3="console=ttyS0 spanvm_short"

die() { echo "bench/linux.sh: $*" >&2; exit 1; }
[ -x "$SPANVM" ] || die "$SPANVM not built (run: make build)"
[ -f "$G/Image" ] && [ -f "$G/initramfs.cpio" ] || die "no guest in $G (run: make guest-linux)"
command -v qemu-system-riscv64 >/dev/null || die "qemu-system-riscv64 missing (qemu-system-misc)"
command -v python3 >/dev/null || die "python3 missing"
mkdir -p "$BUILD/bench"

# timed_boot CMD...: prints "first_line_s poweroff_s exit_code" for one boot.
timed_boot() {
	python3 - "$@" <<'PY'
import subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL)
first = None
ok = False
for raw in p.stdout:
    line = raw.decode(errors="replace")
    if first is None and "init: start," in line:
        first = time.monotonic() - t0
    if "init: workload ok" in line:
        ok = True
rc = p.wait()
end = time.monotonic() - t0
if first is None or not ok:
    rc = rc or 1
print("%.4f %.4f %d" % (first if first is not None else -1, end, rc))
PY
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for r in $(seq 1 "$ROUNDS"); do
	set -- $(timed_boot "$SPANVM" run "$G/Image" --initrd "$G/initramfs.cpio" \
		--append "$APPEND" --harts "$HARTS" --timeout 120)
	[ "$3" -eq 0 ] || die "spanvm boot failed (exit $3) in round $r"
	echo "$1" >>"$TMP/s_first"; echo "$2" >>"$TMP/s_off"
	set -- $(timed_boot timeout 120 qemu-system-riscv64 -machine virt -smp "$HARTS" -m 128 \
		-bios default -kernel "$G/Image" -initrd "$G/initramfs.cpio" -append "$APPEND" \
		-nographic -no-reboot)
	[ "$3" -eq 0 ] || die "qemu boot failed (exit $3) in round $r"
	echo "$1" >>"$TMP/q_first"; echo "$2" >>"$TMP/q_off"
	echo "round $r: spanvm $(tail -1 "$TMP/s_first")/$(tail -1 "$TMP/s_off") s," \
		"qemu $(tail -1 "$TMP/q_first")/$(tail -1 "$TMP/q_off") s (first line/power-off)" >&2
done
# 3 nodes (4 harts) vs 1 node (4 harts)
GA=$(realpath "$G")
cat >"$TMP/l3.json" <<JSON
{ "version": 1,
  "vm": { "name": "bench3", "memory_mib": 128, "vcpus": 4, "kernel": "$GA/Image",
          "initrd": "$GA/initramfs.cpio", "cmdline": "$APPEND3" },
  "cluster": { "coordinator": { "host": "127.0.0.1", "port": 0 }, "heartbeat_ms": 250,
               "lease_ms": 5000, "join_timeout_ms": 20000, "on_node_failure": "stop" },
  "nodes": [ { "id": 1, "bind": "127.0.0.1", "vcpus": [0, 1] },
             { "id": 2, "bind": "127.0.0.1", "vcpus": [2] },
             { "id": 3, "bind": "127.0.0.1", "vcpus": [3] } ] }
JSON
# a runtime dir of our own: a cluster another user launched in the default
# one would make ours refuse to start
SPANVM_RUN_DIR=$TMP/run
export SPANVM_RUN_DIR
for r in $(seq 1 "$ROUNDS3"); do
	set -- $(timed_boot "$SPANVM" run "$G/Image" --initrd "$G/initramfs.cpio" \
		--append "$APPEND3" --harts 4 --timeout 120)
	[ "$3" -eq 0 ] || die "spanvm 4-hart boot failed (exit $3) in round $r"
	echo "$1" >>"$TMP/o_first"; echo "$2" >>"$TMP/o_off"
	set -- $(timed_boot timeout "$TIMEOUT3" "$SPANVM" launch "$TMP/l3.json")
	[ "$3" -eq 0 ] || die "spanvm 3-node boot failed (exit $3) in round $r"
	echo "$1" >>"$TMP/t_first"; echo "$2" >>"$TMP/t_off"
	echo "round $r: 4 harts 1 node $(tail -1 "$TMP/o_first")/$(tail -1 "$TMP/o_off") s," \
		"3 nodes $(tail -1 "$TMP/t_first")/$(tail -1 "$TMP/t_off") s (first line/power-off)" >&2
done
three=null; three_first=null; one4=null; tri=null
if [ "$ROUNDS3" -gt 0 ]; then
	of=$(median <"$TMP/o_first"); oo=$(median <"$TMP/o_off")
	tf=$(median <"$TMP/t_first"); to=$(median <"$TMP/t_off")
	three=$(awk -v a="$to" -v b="$oo" 'BEGIN { printf "%.3f", a / b }')
	three_first=$(awk -v a="$tf" -v b="$of" 'BEGIN { printf "%.3f", a / b }')
	one4="{\"first_line_s\": $of, \"poweroff_s\": $oo}"
	tri="{\"first_line_s\": $tf, \"poweroff_s\": $to, \"placement\": \"harts 0,1 | 2 | 3\"}"
fi
sf=$(median <"$TMP/s_first"); so=$(median <"$TMP/s_off")
qf=$(median <"$TMP/q_first"); qo=$(median <"$TMP/q_off")
ratio=$(awk -v a="$so" -v b="$qo" 'BEGIN { printf "%.3f", a / b }')
ratio_first=$(awk -v a="$sf" -v b="$qf" 'BEGIN { printf "%.3f", a / b }')
cat >"$OUT" <<JSON
{
  "bench": "linux",
  "harts": $HARTS,
  "rounds": $ROUNDS,
  "kernel": "$G/Image",
  "kernel_bytes": $(stat -c %s "$G/Image"),
  "cmdline": "$APPEND",
  "spanvm_1node": {"first_line_s": $sf, "poweroff_s": $so},
  "qemu": {"first_line_s": $qf, "poweroff_s": $qo,
           "cmd": "qemu-system-riscv64 -machine virt -smp $HARTS -m 128 -bios default"},
  "boot_ratio_vs_qemu": $ratio,
  "first_line_ratio_vs_qemu": $ratio_first,
  "spanvm_1node_4harts": $one4,
  "spanvm_3node_4harts": $tri,
  "boot_ratio_3node_vs_1node": $three,
  "first_line_ratio_3node_vs_1node": $three_first,
  "rounds_3node": $ROUNDS3,
  "cmdline_3node": "$APPEND3",
  "note": "ratios = spanvm time / baseline time (lower is better); medians over rounds; the 3-node ratio compares 4 harts over 3 local node processes with 4 harts on one node"
}
JSON
cat "$OUT"
