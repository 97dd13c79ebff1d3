#!/bin/sh
# A spanvm cluster of N hosts on one machine, one network namespace per host.
#
#   cluster.sh [-t TAG] up N [--net-only]   build it (and start coordinator + nodes)
#   cluster.sh [-t TAG] down                 remove everything (idempotent)
#   cluster.sh [-t TAG] start                start coordinator + nodes again (net up, none running)
#   cluster.sh [-t TAG] exec H CMD [ARG...]  run CMD in host H's namespace
#   cluster.sh [-t TAG] status [--json]      spanvm status (final status once it stopped)
#   cluster.sh [-t TAG] info                 state dir, hosts, addresses, pids
#   cluster.sh gc                            remove clusters whose owner process is gone
#
# Hosts: h0 runs the coordinator (198.18.0.1, port 7400); hI (I = 1..N) runs
# spanvm-node I (198.18.0.(I+1)).  Each host namespace has one veth ("eth0")
# into a switch namespace holding the bridge, so nothing is added to the
# root namespace and deleting the switch namespace removes every link.
# Traffic between namespaces is real TCP (libfabric tcp;ofi_rxm for the
# data plane), the same binaries a real deployment runs.
#
# TAG (default: $SPANVM_NETNS_TAG, else "0") keeps parallel clusters apart:
# namespaces are spanvm-TAG-h0.., state lives in /run/spanvm-netns/TAG
# (vm.json, secret, logs, pids, owner).  Tests use their PID as TAG.
#
# Environment: SPANVM_BIN (binary dir; default ../../build/bin from here),
# SPANVM_NETNS_HEARTBEAT_MS (200), SPANVM_NETNS_LEASE_MS (2000),
# SPANVM_NETNS_KERNEL (guest ELF/Image: the VM runs it across the nodes),
# SPANVM_NETNS_VCPUS (vCPUs, default N; vCPU k on node k mod N + 1),
# SPANVM_NETNS_POLICY (stop|continue, default stop), SPANVM_NETNS_LOG (log
# level of the processes, default info), SPANVM_NETNS_OWNER
# (pid whose death makes the cluster garbage for `gc`; default: the caller).
# Needs root.  Exit: 0 ok, 1 failure, 2 usage.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TAG=${SPANVM_NETNS_TAG:-0}
BIN=${SPANVM_BIN:-$HERE/../../build/bin}
HB=${SPANVM_NETNS_HEARTBEAT_MS:-200}
LEASE=${SPANVM_NETNS_LEASE_MS:-2000}
POLICY=${SPANVM_NETNS_POLICY:-stop}
LOGLEVEL=${SPANVM_NETNS_LOG:-info}
STATE_ROOT=/run/spanvm-netns
COORD_PORT=7400

usage() {
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh[$TAG]: $*" >&2; }

ns() { echo "spanvm-$TAG-h$1"; }
sw() { echo "spanvm-$TAG-sw"; }
addr() { echo "198.18.0.$(($1 + 1))"; }
state() { echo "$STATE_ROOT/$TAG"; }
ms() { echo $(($(date +%s%N) / 1000000)); }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, bridge); run as root"
	command -v ip >/dev/null || die "the 'ip' command (iproute2) is missing"
}

# Our namespaces, whether or not the state dir survived.
our_namespaces() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^spanvm-$TAG-(h[0-9]+|sw)\$"
}

build_net() { # N
	S=$(sw)
	ip netns add "$S" || return 1
	ip -n "$S" link set lo up
	ip -n "$S" link add br0 type bridge || return 1
	ip -n "$S" link set br0 up
	i=0
	while [ "$i" -le "$1" ]; do
		H=$(ns "$i")
		ip netns add "$H" || return 1
		ip -n "$H" link set lo up
		ip -n "$H" link add eth0 type veth peer name p"$i" netns "$S" || return 1
		ip -n "$S" link set p"$i" master br0 up || return 1
		ip -n "$H" addr add "$(addr "$i")/15" dev eth0 || return 1
		ip -n "$H" link set eth0 up || return 1
		# After a cut heals TCP waits for its next retransmission, which
		# backs off to 120 s by default; cap it (kernel >= 6.15) so a healed
		# link carries heartbeats again within a second (docs/deploy.md).
		ip netns exec "$H" sh -c 'echo 1000 >/proc/sys/net/ipv4/tcp_rto_max_ms' 2>/dev/null
		i=$((i + 1))
	done
}

write_config() { # N dir
	nodes="" i=1 nv=${SPANVM_NETNS_VCPUS:-$1}
	guest="\"image\": null"
	if [ -n "${SPANVM_NETNS_KERNEL:-}" ]; then
		# a bare-metal ELF is vm.image; anything else a Linux Image (vm.kernel)
		if [ "$(head -c 4 "$SPANVM_NETNS_KERNEL" | od -An -c | tr -d ' ')" = '177ELF' ]; then
			guest="\"image\": \"$SPANVM_NETNS_KERNEL\""
		else
			guest="\"kernel\": \"$SPANVM_NETNS_KERNEL\", \"image\": null"
		fi
	fi
	while [ "$i" -le "$1" ]; do
		[ -n "$nodes" ] && nodes="$nodes,
"
		v="" k=$((i - 1)) # vCPU k on node (k mod N) + 1
		while [ "$k" -lt "$nv" ]; do v="$v${v:+, }$k"; k=$((k + $1)); done
		nodes="$nodes    { \"id\": $i, \"bind\": \"$(addr "$i")\", \"vcpus\": [$v] }"
		i=$((i + 1))
	done
	cat >"$2/vm.json" <<EOF
{ "version": 1,
  "vm": { "name": "netns-$TAG", "memory_mib": 64, "vcpus": $nv, $guest },
  "cluster": { "provider": "tcp;ofi_rxm",
               "coordinator": { "host": "$(addr 0)", "port": $COORD_PORT },
               "secret_file": "secret",
               "heartbeat_ms": $HB, "lease_ms": $LEASE, "join_timeout_ms": 20000,
               "on_node_failure": "$POLICY" },
  "nodes": [
$nodes ] }
EOF
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$2/secret")
}

start_procs() { # N dir
	ip netns exec "$(ns 0)" "$BIN/spanvm-coord" --config "$2/vm.json" --log-level "$LOGLEVEL" \
		--status-file "$2/final-status.pb" \
		>"$2/coord.log" 2>&1 </dev/null &
	echo "coord $!" >"$2/pids"
	i=1
	while [ "$i" -le "$1" ]; do
		# SPANVM_RUN_DIR: DSM stats and audit dumps land in the state dir
		ip netns exec "$(ns "$i")" env SPANVM_RUN_DIR="$2" \
			"$BIN/spanvm-node" --config "$2/vm.json" --node-id "$i" \
			--log-level "$LOGLEVEL" \
			>"$2/node$i.log" 2>&1 </dev/null &
		echo "node$i $!" >>"$2/pids"
		i=$((i + 1))
	done
}

running_count() { # dir -> number of nodes in state running
	ip netns exec "$(ns 0)" "$BIN/spanvm" status --json --coord "$(addr 0):$COORD_PORT" \
		--secret-file "$1/secret" 2>/dev/null | grep -c '"state": "running"'
}

cmd_up() {
	[ $# -ge 1 ] || usage
	N=$1 net_only=0
	[ "${2:-}" = --net-only ] && net_only=1
	case "$N" in '' | *[!0-9]*) die "up: N must be a number in 1..32, got '$N'" ;; esac
	[ "$N" -ge 1 ] && [ "$N" -le 32 ] || die "up: N must be in 1..32, got $N"
	need_root
	D=$(state)
	[ -e "$D" ] && die "cluster '$TAG' is already up ($D); run: $0 -t $TAG down"
	[ -n "$(our_namespaces)" ] && die "namespaces spanvm-$TAG-* exist (left from a crashed run?); run: $0 -t $TAG down"
	if [ "$net_only" -eq 0 ]; then
		for b in spanvm spanvm-coord spanvm-node; do
			[ -x "$BIN/$b" ] || die "$BIN/$b not found: build first or set SPANVM_BIN"
		done
	fi
	mkdir -p "$D" && chmod 700 "$D" || die "cannot create $D"
	echo "${SPANVM_NETNS_OWNER:-$PPID}" >"$D/owner"
	echo "$N" >"$D/hosts"
	build_net "$N" || { cmd_down >/dev/null 2>&1; die "building the namespaces failed"; }
	write_config "$N" "$D"
	log "$((N + 1)) namespaces up: $(ns 0) (coordinator $(addr 0)), nodes $(ns 1)..$(ns "$N")"
	[ "$net_only" -eq 1 ] && return 0
	start_procs "$N" "$D"
	wait_running "$N" "$D"
}

wait_running() { # N dir
	t0=$(ms)
	until [ "$(running_count "$2")" -eq "$1" ]; do
		if [ $(($(ms) - t0)) -gt 30000 ]; then
			for f in "$2"/*.log; do echo "--- $f" >&2; tail -n 15 "$f" >&2; done
			die "the cluster did not reach 'running' on all $1 nodes within 30 s"
		fi
		sleep 0.2
	done
	log "all $1 nodes running ($(($(ms) - t0)) ms)"
}

# A new coordinator and nodes on a network that is up (after `up N
# --net-only`, or once the previous VM stopped): the soak runs one VM after
# another on the same hosts while its cut schedule goes on.  The previous
# run's logs, dumps and status are removed.
cmd_start() {
	need_root
	D=$(state)
	[ -f "$D/hosts" ] || die "cluster '$TAG' is not up; run: $0 -t $TAG up N --net-only"
	N=$(cat "$D/hosts")
	# the previous VM's processes (not whatever else runs in the namespaces:
	# spanvm-chaos's nft calls do, at any time)
	for p in $(awk '{print $2}' "$D/pids" 2>/dev/null); do
		if [ -r "/proc/$p/stat" ] && grep -q "spanvm" "/proc/$p/comm" 2>/dev/null &&
			! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
			die "the previous VM still runs (pid $p); wait for its stop or run: $0 -t $TAG down"
		fi
	done
	for b in spanvm spanvm-coord spanvm-node; do
		[ -x "$BIN/$b" ] || die "$BIN/$b not found: build first or set SPANVM_BIN"
	done
	rm -f "$D"/*.log "$D"/dsm-*.txt "$D"/dsm-*.json "$D/final-status.pb" "$D/pids"
	start_procs "$N" "$D"
	wait_running "$N" "$D"
}

pids_in() { ip netns pids "$1" 2>/dev/null; }

cmd_down() {
	need_root
	D=$(state)
	# Orderly first: SIGTERM makes the coordinator stop every node in turn.
	for p in $(pids_in "$(ns 0)"); do kill -TERM "$p" 2>/dev/null; done
	t0=$(ms)
	nsl=$(our_namespaces)
	while :; do
		left=""
		for n in $nsl; do left="$left$(pids_in "$n")"; done
		[ -z "$left" ] && break
		[ $(($(ms) - t0)) -gt 3000 ] && break
		sleep 0.1
	done
	for n in $nsl; do
		for p in $(pids_in "$n"); do kill -KILL "$p" 2>/dev/null; done
	done
	for n in $nsl; do ip netns del "$n" 2>/dev/null || log "cannot delete namespace $n"; done
	rm -rf "$D"
	[ -z "$(our_namespaces)" ] || die "namespaces left: $(our_namespaces | tr '\n' ' ')"
	log "down"
}

cmd_exec() {
	[ $# -ge 2 ] || usage
	need_root
	case "$1" in '' | *[!0-9]*) die "exec: host must be a number (0 = coordinator host)" ;; esac
	H=$(ns "$1")
	ip netns list | awk '{print $1}' | grep -qx "$H" || die "no host $1 in cluster '$TAG' ($H)"
	shift
	exec ip netns exec "$H" "$@"
}

cmd_status() {
	need_root
	D=$(state)
	[ -d "$D" ] || die "cluster '$TAG' is not up"
	# once the coordinator is gone: its final status (exit 3)
	exec ip netns exec "$(ns 0)" "$BIN/spanvm" status "$@" --coord "$(addr 0):$COORD_PORT" \
		--secret-file "$D/secret" --status-file "$D/final-status.pb"
}

cmd_info() {
	D=$(state)
	[ -d "$D" ] || die "cluster '$TAG' is not up"
	N=$(cat "$D/hosts")
	echo "tag $TAG state $D coordinator $(addr 0):$COORD_PORT"
	i=0
	while [ "$i" -le "$N" ]; do
		echo "h$i $(ns "$i") $(addr "$i")"
		i=$((i + 1))
	done
	[ -f "$D/pids" ] && cat "$D/pids"
	return 0
}

cmd_gc() {
	need_root
	for d in "$STATE_ROOT"/*; do
		[ -f "$d/owner" ] || continue
		o=$(cat "$d/owner")
		[ -d "/proc/$o" ] && continue
		TAG=$(basename "$d") cmd_down_sub
	done
	# namespaces without a state dir at all
	for t in $(ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^spanvm-\(.*\)-sw$/\1/p'); do
		[ -d "$STATE_ROOT/$t" ] || TAG=$t cmd_down_sub
	done
}
cmd_down_sub() { (cmd_down); }

while getopts t:h o; do
	case $o in
	t) TAG=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
case "$TAG" in '' | *[!a-z0-9]*) die "tag '$TAG' must be 1..8 of [a-z0-9]" ;; esac
[ ${#TAG} -le 8 ] || die "tag '$TAG' must be 1..8 of [a-z0-9]"
[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
up) cmd_up "$@" ;;
down) cmd_down ;;
exec) cmd_exec "$@" ;;
status) cmd_status "$@" ;;
start) cmd_start ;;
info) cmd_info ;;
gc) cmd_gc ;;
--help | help) usage ;;
*) echo "cluster.sh: unknown command '$cmd'" >&2; usage ;;
esac
