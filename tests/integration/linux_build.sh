#!/bin/sh
# Builds the Linux guest (kernel + initramfs) for the linux.* tests, or
# skips (77) when the cross compiler or the kernel source is not installed.
# Usage: linux_build.sh BUILD_SH OUTDIR
set -u
build=$1 out=$2
if ! command -v riscv64-linux-gnu-gcc >/dev/null || [ ! -r /usr/src/linux-source-6.1.tar.xz ]; then
	echo "SKIP: gcc-riscv64-linux-gnu or linux-source-6.1 missing (deploy/install-deps.sh linux)"
	exit 77
fi
JOBS=${JOBS:-2} nice -n 10 "$build" "$out"
