#!/bin/sh
# Build the test initramfs: /init from init.c (no libc, soft-float) packed
# with gen_init_cpio.  Usage: build-initramfs.sh OUTDIR GEN_INIT_CPIO
# Output: OUTDIR/init (ELF) and OUTDIR/initramfs.cpio.  Rebuilt only when
# init.c or this script is newer than the output.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-initramfs.sh OUTDIR GEN_INIT_CPIO}
gen=${2:?usage: build-initramfs.sh OUTDIR GEN_INIT_CPIO}
cc=${CROSS_COMPILE:-riscv64-linux-gnu-}gcc

command -v "$cc" >/dev/null || { echo "build-initramfs: $cc not found (deploy/install-deps.sh linux)" >&2; exit 1; }
[ -x "$gen" ] || { echo "build-initramfs: $gen missing (build the kernel first)" >&2; exit 1; }
mkdir -p "$out"
if [ -f "$out/initramfs.cpio" ] && [ "$out/initramfs.cpio" -nt "$here/init.c" ] &&
   [ "$out/initramfs.cpio" -nt "$0" ]; then
	echo "build-initramfs: $out/initramfs.cpio is up to date"
	exit 0
fi
"$cc" -march=rv64imac -mabi=lp64 -O2 -Wall -Wextra -Werror -static -nostdlib -ffreestanding \
	-fno-pie -no-pie -fno-stack-protector -fno-asynchronous-unwind-tables -Wl,--no-warn-rwx-segments \
	-o "$out/init" "$here/init.c"
cat >"$out/initramfs.list" <<LIST
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1
dir /proc 0755 0 0
file /init $out/init 0755 0 0
LIST
"$gen" "$out/initramfs.list" >"$out/initramfs.cpio.tmp"
mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
echo "build-initramfs: $out/initramfs.cpio ($(stat -c %s "$out/initramfs.cpio") bytes)"
