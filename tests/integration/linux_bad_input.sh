#!/bin/sh
# Bad Linux-guest input is refused with a clear message before any vCPU
# starts (so quickly, exit 1): not an image, a missing initrd, an initrd and
# DTB that do not fit in RAM, a kernel that does not fit; usage errors exit
# 2.  `spanvm dtb` writes a DTB that dtc reads back, and reports the same
# misfits.
# Usage: linux_bad_input.sh SPANVM GUEST_DIR
set -u
spanvm=$1 dir=$2
[ -f "$dir/Image" ] || { echo "SKIP: no guest in $dir (linux.build skipped)"; exit 77; }
dir=$(cd "$dir" && pwd) # the config below names files relative to itself
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect CODE PATTERN -- ARGS: runs spanvm ARGS (10 s cap), checks the exit
# code and that stderr matches PATTERN.
expect() {
	code=$1 pat=$2
	shift 3
	timeout 10 "$spanvm" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne "$code" ] || ! grep -q -- "$pat" "$tmp/err"; then
		echo "FAIL: spanvm $*: exit $rc (want $code), stderr:"; cat "$tmp/err"
		fails=$((fails + 1))
	else
		echo "ok: $(head -1 "$tmp/err")"
	fi
}

printf 'this is not a kernel' >"$tmp/junk"
head -c 5000000 /dev/zero >"$tmp/big.cpio"
expect 1 "not one" -- run "$tmp/junk" --initrd "$dir/initramfs.cpio"
expect 1 "initrd $tmp/none: cannot open" -- run "$dir/Image" --initrd "$tmp/none"
expect 1 "do not fit in 8 MiB" -- run "$dir/Image" --initrd "$tmp/big.cpio" --mem 8
expect 1 "does not fit in 2 MiB\|cannot hold a kernel" -- run "$dir/Image" --mem 2
expect 1 "does not fit in 3 MiB" -- run "$dir/Image" --mem 3
expect 2 "not a number" -- run "$dir/Image" --harts x
expect 2 "usage" -- dtb

cat >"$tmp/vm.json" <<JSON
{ "version": 1,
  "vm": { "name": "t", "memory_mib": 64, "vcpus": 3, "kernel": "$dir/Image",
          "initrd": "$dir/initramfs.cpio", "cmdline": "console=ttyS0 quiet" },
  "nodes": [ { "id": 1, "vcpus": [0, 1, 2] } ] }
JSON
if timeout 10 "$spanvm" dtb "$tmp/vm.json" -o "$tmp/vm.dtb" 2>"$tmp/err"; then
	if command -v dtc >/dev/null; then
		dtc -I dtb -O dts -o "$tmp/vm.dts" "$tmp/vm.dtb" 2>/dev/null
		for want in 'bootargs = "console=ttyS0 quiet"' 'cpu@2 {' 'linux,initrd-start' \
			'compatible = "ns16550a"' 'riscv,ndev = <0x1f>'; do
			grep -q "$want" "$tmp/vm.dts" || { echo "FAIL: dtb lacks $want"; fails=$((fails + 1)); }
		done
		echo "ok: spanvm dtb -> dtc"
	fi
else
	echo "FAIL: spanvm dtb:"; cat "$tmp/err"; fails=$((fails + 1))
fi
sed 's/"memory_mib": 64/"memory_mib": 3/' "$tmp/vm.json" >"$tmp/small.json"
expect 1 "does not fit" -- dtb "$tmp/small.json" -o "$tmp/x.dtb"
[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
