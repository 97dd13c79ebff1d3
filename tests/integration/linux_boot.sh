#!/bin/sh
# Boots the guest kernel on one node with N harts and checks what the init
# reports: every hart online in the kernel log, one worker line per hart
# (each on a distinct hart), the parallel workload's result verified by the
# init, and a normal SBI power-off (exit 0).
# Usage: linux_boot.sh SPANVM GUEST_DIR HARTS
set -u
spanvm=$1 dir=$2 harts=$3
[ -f "$dir/Image" ] && [ -f "$dir/initramfs.cpio" ] ||
	{ echo "SKIP: no guest in $dir (linux.build skipped)"; exit 77; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$spanvm" run "$dir/Image" --initrd "$dir/initramfs.cpio" --append "console=ttyS0" \
	--harts "$harts" --timeout 120 >"$log" 2>&1
rc=$?
fail() { echo "FAIL: $*"; echo "---- console ----"; cat "$log"; exit 1; }
[ $rc -eq 0 ] || fail "spanvm exited $rc, want 0 (power-off)"
grep -q "smp: Brought up 1 node, $harts CPUs" "$log" || fail "not all $harts harts online"
grep -q "^init: start, $harts harts" "$log" || fail "init did not see $harts harts"
grep -q "^init: workload ok" "$log" || fail "workload result not verified"
n=$(grep -c "^init: hart [0-9]* worker" "$log")
[ "$n" -eq "$harts" ] || fail "$n worker lines, want $harts"
d=$(grep "^init: hart [0-9]* worker" "$log" | awk '{print $3}' | sort -u | wc -l)
[ "$d" -eq "$harts" ] || fail "workers ran on $d distinct harts, want $harts"
grep -q "reboot: Power down" "$log" || fail "no power-down message"
echo "ok: $harts harts, $(grep '^init: workload' "$log")"
