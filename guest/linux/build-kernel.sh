#!/bin/sh
# Build the spanvm guest kernel Image from Debian's linux-source-6.1:
# tinyconfig (or $KBASE, e.g. defconfig) + guest/linux/<fragment>,
# cross-compiled with riscv64-linux-gnu-.
# Usage: [KBASE=defconfig] build-kernel.sh OUTDIR [FRAGMENT]
# Output: OUTDIR/Image, OUTDIR/System.map, OUTDIR/.config, OUTDIR/gen_init_cpio.
# Cached: the build is skipped when OUTDIR/stamp matches the hash of the
# fragment, this script and the source tarball, so a second run is instant.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-kernel.sh OUTDIR [FRAGMENT]}
frag=${2:-$here/kernel.config}
tarball=/usr/src/linux-source-6.1.tar.xz
cross=${CROSS_COMPILE:-riscv64-linux-gnu-}
jobs=${JOBS:-2}
base=${KBASE:-tinyconfig}

[ -r "$tarball" ] || { echo "build-kernel: $tarball missing (deploy/install-deps.sh linux)" >&2; exit 1; }
[ -r "$frag" ] || { echo "build-kernel: fragment $frag not readable" >&2; exit 1; }
command -v "${cross}gcc" >/dev/null || { echo "build-kernel: ${cross}gcc not found (deploy/install-deps.sh linux)" >&2; exit 1; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
key=$( (echo "$base"; cat "$frag" "$0"; ls -l --time-style=+%s "$tarball") | sha256sum | cut -d' ' -f1)
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$key" ] && [ -f "$out/Image" ]; then
	echo "build-kernel: $out/Image is up to date"
	exit 0
fi

src=$out/src
if [ ! -f "$src/Makefile" ]; then
	echo "build-kernel: unpacking $tarball" >&2
	rm -rf "$src.tmp" && mkdir -p "$src.tmp"
	tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
	mv "$src.tmp" "$src"
fi

kmake() { make -C "$src" O="$out/obj" ARCH=riscv CROSS_COMPILE="$cross" -j"$jobs" "$@"; }
mkdir -p "$out/obj"
kmake "$base" >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$out/obj" "$out/obj/.config" "$frag" >/dev/null
kmake olddefconfig >/dev/null
# Every option the fragment sets must have survived olddefconfig, or the
# fragment asks for something this tree cannot give (a dependency is missing).
bad=0
grep -E '^CONFIG_[A-Z0-9_]+=' "$frag" | while IFS= read -r line; do
	opt=${line%%=*}; val=${line#*=}
	if [ "$val" = n ]; then
		grep -q "^$opt=" "$out/obj/.config" && { echo "build-kernel: $opt is set, fragment wants n" >&2; exit 1; }
	else
		grep -qx "$line" "$out/obj/.config" || { echo "build-kernel: $line did not survive olddefconfig" >&2; exit 1; }
	fi
done || bad=1
[ $bad -eq 0 ] || exit 1
echo "build-kernel: building Image in $out/obj (takes minutes)" >&2
kmake Image >"$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; exit 1; }
cp "$out/obj/arch/riscv/boot/Image" "$out/Image"
cp "$out/obj/System.map" "$out/System.map"
cp "$out/obj/.config" "$out/config"
# gen_init_cpio is a one-file host tool: build it directly.
cc -O2 -o "$out/gen_init_cpio" "$src/usr/gen_init_cpio.c"
echo "$key" >"$out/stamp"
echo "build-kernel: $out/Image ($(stat -c %s "$out/Image") bytes)"
