#!/bin/sh
# Install the Debian packages spanvm needs, and only those that are missing.
# Idempotent and fast when everything is present: dpkg-query decides, apt-get
# runs only for the gap.  Usage: install-deps.sh [core|linux|all]
set -eu

group="${1:-core}"

core="build-essential cmake pkg-config git \
 libfabric-dev libfabric-bin libibverbs-dev \
 protobuf-c-compiler libprotobuf-c-dev libjansson-dev libcmocka-dev libsodium-dev \
 gcc-riscv64-unknown-elf qemu-system-misc device-tree-compiler libfdt-dev \
 spin clang libclang-rt-14-dev nftables iptables iproute2 procps psmisc systemd python3"
linux="gcc-riscv64-linux-gnu linux-source-6.1 bc bison flex libssl-dev cpio xz-utils"

case "$group" in
core) want="$core" ;;
linux) want="$linux" ;;
all) want="$core $linux" ;;
-h|--help) echo "usage: $0 [core|linux|all]"; exit 0 ;;
*) echo "install-deps.sh: unknown group '$group' (want core, linux or all)" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when an install fails on stale lists.
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null; then
	$SUDO apt-get update -q >/dev/null
	$SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
