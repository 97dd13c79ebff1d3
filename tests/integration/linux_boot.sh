#!/bin/sh
# Boots the guest kernel on one node with N harts and checks what the init
# reports: every hart online in the kernel log, one worker line per hart
# (each on a distinct hart), the parallel workload's result verified by the
# init, and a normal SBI power-off (exit 0).
# With a 4th argument "corrupt", the init spoils the shared result on
# purpose: the check must then report FAILED and the VM end with exit 3
# (the init asks for a restart), proving the check can fail.
# Usage: linux_boot.sh SPANVM GUEST_DIR HARTS [corrupt]
set -u
spanvm=$1 dir=$2 harts=$3 mode=${4:-}
[ -f "$dir/Image" ] && [ -f "$dir/initramfs.cpio" ] ||
	{ echo "SKIP: no guest in $dir (linux.build skipped)"; exit 77; }
append="console=ttyS0"
[ "$mode" = corrupt ] && append="console=ttyS0 spanvm_corrupt"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$spanvm" run "$dir/Image" --initrd "$dir/initramfs.cpio" --append "$append" \
	--harts "$harts" --timeout 120 >"$log" 2>&1
rc=$?
fail() { echo "FAIL: $*"; echo "---- console ----"; cat "$log"; exit 1; }
if [ "$mode" = corrupt ]; then
	[ $rc -eq 3 ] || fail "spanvm exited $rc, want 3 (restart after a failed check)"
	grep -q "^init: workload FAILED" "$log" || fail "the spoiled result was not caught"
	echo "ok: spoiled result caught, exit 3"
	exit 0
fi
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
