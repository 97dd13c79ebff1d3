#!/bin/sh
# Partition soak on a namespace cluster: a random schedule of real link cuts
# (nftables, spanvm-chaos) for MINUTES while the coherence stress guest runs
# across the namespace hosts, one VM after another; the last line on stdout
# is a JSON summary.
#
# usage: soak.sh BINDIR [SEED [MINUTES]]      (make soak SEED=… MINUTES=…)
#
# Cuts (symmetric, one-way, isolate, split; the coordinator's host
# included) last 200 ms .. 1666 ms, 2 s apart, lease 8 s (after a heal, TCP needs up
# to a second to retransmit and the peer watch a round or two to notice, so
# a cut is seen as cut + ~1.5 s; docs/deploy.md), so the partition rules
# say no node may be declared failed.  The schedule runs over the whole
# soak, across VM boundaries: the network stays up, `cluster.sh start`
# starts a new coordinator and nodes when a VM has stopped.
#
# Each VM runs the stress guest (guest/deploy/coherence.c, 4 harts on 3
# nodes) to its end; the guest's exit stops the VM in order.  Per run: the
# guest's records are checked by coherence-check (counters exact, every
# message once and in order, no stale code), and the DSM audit dumps the
# nodes wrote at their stop by dsm-audit-check (one owner per page,
# copysets and versions consistent).  During a run the coordinator's status
# is sampled twice a second: no node may be failed (false_failures), and
# the longest heartbeat gap it saw is longest_stall.  Summary: seed, cuts,
# coherence_runs, ops_checked, violations (coherence + audit), lost,
# duplicated, audit {runs, violations, ok}, longest_stall_s, false_failures,
# stopped_in_order, ok.
#
# Environment: SPANVM_SOAK_SECONDS (overrides MINUTES), SPANVM_SOAK_LEASE_MS
# (8000), SPANVM_SOAK_MAX_CUT_MS (longest cut, 1666: well inside the lease
# even when the machine is oversubscribed),
# SPANVM_SOAK_GAP_MS (2000: the pause between cuts; shorter pauses let
# consecutive cuts of one node add up to more than the lease),
# SPANVM_SOAK_GUEST (ELF; default
# BINDIR/guest/stress_coherence.elf), SPANVM_SOAK_COHERENCE=0 (no guest:
# one VM without vCPUs rides out the cuts, then `spanvm stop`).
# Exit: 0 ok, 1 otherwise, 2 usage, 77 cannot run here (not root).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { sed -n '7p' "$0" | sed 's/^# //' >&2; exit 2; }
B=$(cd "$1" 2>/dev/null && pwd) || { echo "soak: no build dir $1" >&2; exit 2; }
BIN=$B/bin
[ -x "$BIN/spanvm-node" ] || BIN=$B
SEED=${2:-1}
MINUTES=${3:-10}
case "$SEED$MINUTES" in *[!0-9]*) echo "soak: SEED and MINUTES must be whole numbers" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "soak: needs root (network namespaces)" >&2; exit 77; }
NODES=3
# two shared cores: heartbeats and pings run seconds late under load, so the
# lease has slack beyond the longest cut + the ~1.5 s a heal takes
LEASE=${SPANVM_SOAK_LEASE_MS:-8000}
MAXCUT=${SPANVM_SOAK_MAX_CUT_MS:-1666}
# between cuts: longer than a healed link takes to carry traffic again
# (~1.5 s), or cuts of one node run together into one outage past the lease
GAP=${SPANVM_SOAK_GAP_MS:-2000}
SECONDS_=${SPANVM_SOAK_SECONDS:-$((MINUTES * 60))}
ELF=${SPANVM_SOAK_GUEST:-$B/guest/stress_coherence.elf}
GUEST=1
[ "${SPANVM_SOAK_COHERENCE:-1}" = 0 ] && GUEST=0
if [ "$GUEST" = 1 ]; then
	[ -f "$ELF" ] || { echo "soak: guest $ELF not built (make guests) or SPANVM_SOAK_COHERENCE=0" >&2; exit 2; }
	ELF=$(cd "$(dirname "$ELF")" && pwd)/$(basename "$ELF")
	export SPANVM_NETNS_KERNEL="$ELF" SPANVM_NETNS_VCPUS=4
fi
TAG=s$(($$ % 10000000))
export SPANVM_BIN="$BIN" SPANVM_NETNS_TAG="$TAG" SPANVM_NETNS_OWNER=$$ SPANVM_NETNS_LEASE_MS=$LEASE \
	SPANVM_NETNS_HEARTBEAT_MS=250 SPANVM_NETNS_POLICY=stop
D=/run/spanvm-netns/$TAG
T=$(mktemp -d /tmp/spanvm-soak-XXXXXX)
CHAOS_PID=""
cleanup() {
	[ -n "$CHAOS_PID" ] && kill "$CHAOS_PID" 2>/dev/null
	"$HERE/cluster.sh" down >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ms() { echo $(($(date +%s%N) / 1000000)); }
num() { echo "$1" | sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p"; }
procs_alive() { # any coordinator/node process of this run still there?
	for p in $(awk '{print $2}' "$D/pids" 2>/dev/null); do
		[ -d "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && return 0
	done
	return 1
}

samples=0 stall=0 false_failures=0 runs=0 ops=0 cviol=0 aviol=0 aruns=0 lost=0 dup=0
stopped=true failed_runs=0
# sample: one status poll while a VM runs (status exit 3 = it already stopped)
sample() {
	"$HERE/cluster.sh" status --json >"$T/st.json" 2>/dev/null || return 0
	samples=$((samples + 1))
	# the heartbeat gap of running nodes (a stopped node's age just grows)
	a=$(awk '/"state": / { run = ($0 ~ /"running"/) }
		run && /"heartbeat_age_ms": [0-9]/ { v = $2 + 0; if (v > m) m = v } END { print m + 0 }' "$T/st.json")
	[ -n "$a" ] && [ "$a" -gt "$stall" ] && stall=$a
	if grep -q '"state": "failed"' "$T/st.json"; then
		false_failures=$((false_failures + 1))
		echo "soak: a node was declared failed: $(tr -d '\n' <"$T/st.json")" >&2
	fi
}
show_logs() {
	for f in "$D"/*.log; do echo "--- $f" >&2; grep -v "DBG\|COH\|PROBE" "$f" | tail -n 12 >&2; done
}

# one VM with the guest, to its end; checks and counts it
run_guest() { # k
	"$HERE/cluster.sh" start 2>>"$T/start.err" ||
		{ echo "soak: run $1 did not start:" >&2; tail -n 5 "$T/start.err" >&2; show_logs; return 1; }
	t0=$(ms)
	while ! grep -q "phase stopping -> stopped" "$D/coord.log" 2>/dev/null; do
		sample
		[ "$false_failures" -gt 0 ] && { show_logs; return 1; }
		[ $(($(ms) - t0)) -gt 600000 ] && { echo "soak: run $1 did not end within 600 s" >&2; show_logs; return 1; }
		sleep 0.5
	done
	t1=$(ms)
	while procs_alive; do
		[ $(($(ms) - t1)) -gt 20000 ] && { echo "soak: run $1: processes left after the stop" >&2; return 1; }
		sleep 0.1
	done
	bad0=$((cviol + aviol)) stopped0=$stopped
	# a node failed and the stop was quick: the samples may have missed it,
	# the coordinator's final status does not
	"$HERE/cluster.sh" status --json >"$T/final.json" 2>/dev/null
	if tr -d ' \n' <"$T/final.json" | grep -q '"failed_nodes":\[[0-9]'; then
		false_failures=$((false_failures + 1))
		echo "soak: run $1: a node was declared failed: $(grep '"reason": "[^"]' "$T/final.json" | head -n 3 | tr -d '\n')" >&2
		stopped=false
	fi
	for i in $(seq 1 "$NODES"); do
		grep -q "stop: guest exited with code 0" "$D/node$i.log" ||
			{ echo "soak: run $1: node $i did not stop in order after the guest's exit" >&2; stopped=false; }
	done
	runs=$((runs + 1))
	j=$(cat "$D"/node*.log | "$HERE/coherence-check" 2>/dev/null)
	v=$(num "$j" violations) o=$(num "$j" operations) l=$(num "$j" lost) d=$(num "$j" duplicated)
	ops=$((ops + ${o:-0})) lost=$((lost + ${l:-0})) dup=$((dup + ${d:-0}))
	if [ -z "$v" ] || echo "$j" | grep -q '"error"'; then
		cviol=$((cviol + 1)); echo "soak: run $1: coherence records incomplete: $j" >&2
	else
		cviol=$((cviol + v))
		[ "$v" -eq 0 ] || echo "soak: run $1: coherence violations: $j" >&2
	fi
	a=$("$HERE/dsm-audit-check" --expect-nodes "$NODES" "$D"/dsm-audit-node-*.txt 2>"$T/audit.err")
	aruns=$((aruns + 1))
	av=$(num "$a" violations)
	aviol=$((aviol + ${av:-1}))
	[ "${av:-1}" -eq 0 ] || { echo "soak: run $1: DSM audit: $a" >&2; head -n 5 "$T/audit.err" >&2; }
	if [ $((cviol + aviol)) -ne "$bad0" ] || [ "$stopped" != "$stopped0" ]; then
		# keep what a failed run left for the post-mortem
		keep=/tmp/spanvm-soak-$TAG-run$1
		mkdir -p "$keep" && cp "$D"/*.log "$D"/dsm-audit-node-*.txt "$D"/*.pb "$keep/" 2>/dev/null
		echo "soak: run $1 failed; logs and dumps kept in $keep:" >&2
		grep -h "ERR\|WARN" "$D"/*.log | grep -v "PROBE" | head -n 12 >&2
	fi
	echo "soak: run $1: ${o:-0} operations checked, coherence $v violations, audit ${av:-?} ($(( ($(ms) - t0) / 1000 )) s)" >&2
	return 0
}

# the old cluster-only soak: one VM without vCPUs rides out every cut
run_cluster_only() {
	while kill -0 "$CHAOS_PID" 2>/dev/null; do
		sample
		[ "$false_failures" -gt 0 ] && return 1
		sleep 0.5
	done
	"$HERE/spanvm-chaos" heal-all 2>/dev/null
	t0=$(ms) healed=0
	while [ $(($(ms) - t0)) -lt 20000 ]; do
		"$HERE/cluster.sh" status --json >"$T/st.json" 2>/dev/null &&
			[ "$(grep -c '"state": "running"' "$T/st.json")" -eq "$NODES" ] &&
			! sed -n 's/.*"heartbeat_age_ms": \([0-9-]*\).*/\1/p' "$T/st.json" |
				awk -v l=$((LEASE / 2)) '$1 < 0 || $1 > l {bad = 1} END {exit !bad}' && { healed=1; break; }
		sleep 0.2
	done
	[ "$healed" -eq 1 ] && ip netns exec "spanvm-$TAG-h0" "$BIN/spanvm" stop --coord 198.18.0.1:7400 \
		--secret-file "$D/secret" >/dev/null 2>&1 || { stopped=false; return 1; }
	t0=$(ms)
	while procs_alive; do
		[ $(($(ms) - t0)) -gt 15000 ] && { stopped=false; return 1; }
		sleep 0.1
	done
	for i in $(seq 1 "$NODES"); do grep -q "stop: stop requested" "$D/node$i.log" || stopped=false; done
}

"$HERE/cluster.sh" up "$NODES" --net-only 2>>"$T/start.err" || { cat "$T/start.err" >&2; exit 1; }
if [ "$GUEST" = 0 ]; then
	"$HERE/cluster.sh" start 2>>"$T/start.err" || { cat "$T/start.err" >&2; show_logs; exit 1; }
fi
"$HERE/spanvm-chaos" random "$SEED" "$SECONDS_" 200 "$MAXCUT" "$GAP" all 2>"$T/chaos.err" &
CHAOS_PID=$!
if [ "$GUEST" = 1 ]; then
	k=0
	# runs start while the schedule goes on; the last one ends after it
	while kill -0 "$CHAOS_PID" 2>/dev/null; do
		k=$((k + 1))
		run_guest "$k" || { failed_runs=$((failed_runs + 1)); break; }
	done
else
	run_cluster_only || failed_runs=1
fi
kill "$CHAOS_PID" 2>/dev/null
wait "$CHAOS_PID" 2>/dev/null
CHAOS_PID=""
cuts=$(cat "$D/chaos.cuts" 2>/dev/null || echo 0)

viol=$((cviol + aviol))
ok=false
[ "$false_failures" -eq 0 ] && [ "$stopped" = true ] && [ "$failed_runs" -eq 0 ] &&
	[ "$viol" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$dup" -eq 0 ] &&
	{ [ "$GUEST" = 0 ] || [ "$runs" -gt 0 ]; } && ok=true
stall_s=$(awk -v m="$stall" 'BEGIN { printf "%.1f", m / 1000 }')
aok=false
[ "$aruns" -gt 0 ] && [ "$aviol" -eq 0 ] && aok=true
if [ "$GUEST" = 1 ]; then
	guest="\"$(basename "$ELF") (4 harts) on $NODES namespace hosts, spanvm-node over tcp;ofi_rxm, under real nft cuts\""
	cfields="\"coherence_runs\": $runs, \"ops_checked\": $ops, \"operations\": $ops, \"violations\": $viol, \"coherence_violations\": $cviol, \"lost\": $lost, \"duplicated\": $dup, \"audit\": {\"runs\": $aruns, \"violations\": $aviol, \"ok\": $aok}"
else
	guest='"none (SPANVM_SOAK_COHERENCE=0): the cluster alone rides out the cuts"'
	cfields='"coherence_runs": 0, "ops_checked": null, "operations": null, "violations": 0, "coherence_violations": null, "lost": 0, "duplicated": 0, "audit": null'
fi
printf '{"seed": %s, "minutes": %s, "seconds": %s, "nodes": %s, "lease_ms": %s, "max_cut_ms": %s, "gap_ms": %s, "cuts": %s, "samples": %s, "longest_stall_s": %s, "longest_stall_ms": %s, "false_failures": %s, "failed_runs": %s, "stopped_in_order": %s, %s, "guest": %s, "ok": %s}\n' \
	"$SEED" "$MINUTES" "$SECONDS_" "$NODES" "$LEASE" "$MAXCUT" "$GAP" "$cuts" "$samples" "$stall_s" "$stall" \
	"$false_failures" "$failed_runs" "$stopped" "$cfields" "$guest" "$ok"
[ "$ok" = true ]
