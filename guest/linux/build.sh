#!/bin/sh
# `make guest-linux`: the guest kernel Image and the test initramfs.
# Usage: build.sh OUTDIR   (default build/guest-linux)
# Output: OUTDIR/Image, OUTDIR/System.map, OUTDIR/initramfs.cpio.
# Both steps are cached, so a second run is instant.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build/guest-linux}
"$here/build-kernel.sh" "$out"
"$here/build-initramfs.sh" "$out" "$out/gen_init_cpio"
