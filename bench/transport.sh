#!/bin/sh
# bench/transport.sh BUILD_DIR
#
# 64 B message round trip and 4 KiB RMA read latency of spanvm's transport
# (bench_transport: two processes, loopback) next to fi_pingpong with the
# same provider and sizes, measured in the same run, interleaved over
# several rounds so machine noise hits both alike.
#
# fi_pingpong prints usec/xfer = half a round trip, so its round trip is
# 2 x usec/xfer.  It has no RMA mode: the RMA baseline is its 4 KiB message
# round trip (one request out, 4 KiB back is what a read does).
# Ratios compare means (fi_pingpong reports only a mean); medians over rounds.
#
# Writes BUILD_DIR/bench/transport.json.  Env: SPANVM_PROVIDER (default
# tcp;ofi_rxm), BENCH_ITERS (5000), BENCH_ROUNDS (5), BENCH_SPIN_NS (0 = the
# transport's default busy-poll time, 200 us).
set -eu

BUILD=${1:-build}
PROV=${SPANVM_PROVIDER:-"tcp;ofi_rxm"}
ITERS=${BENCH_ITERS:-5000}
ROUNDS=${BENCH_ROUNDS:-5}
SPIN=${BENCH_SPIN_NS:-0}
BIN=$BUILD/bin/bench_transport
OUT=$BUILD/bench/transport.json

die() { echo "bench/transport.sh: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "$BIN not built (run: make build)"
command -v fi_pingpong >/dev/null || die "fi_pingpong missing (Debian package libfabric-bin)"
mkdir -p "$BUILD/bench"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# One fi_pingpong run: prints usec/xfer for SIZE, or fails.
pingpong() {
	size=$1
	for try in 1 2 3; do
		port=$(( 20000 + ($$ * 7 + try * 131 + size) % 20000 ))
		timeout 120 fi_pingpong -p "$PROV" -e rdm -I "$ITERS" -S "$size" -B "$port" \
			>"$TMP/srv.txt" 2>&1 &
		spid=$!
		sleep 0.3
		if timeout 120 fi_pingpong -p "$PROV" -e rdm -I "$ITERS" -S "$size" -P "$port" \
			127.0.0.1 >"$TMP/cli.txt" 2>&1; then
			wait $spid || true
			awk -v s="$size" '$1 ~ /^[0-9]/ && NF >= 7 { print $7; found=1 } END { exit !found }' \
				"$TMP/cli.txt" && return 0
		fi
		kill $spid 2>/dev/null || true
		wait $spid 2>/dev/null || true
	done
	cat "$TMP/cli.txt" >&2
	return 1
}

field() { # field NAME JSONLINE
	echo "$2" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$TMP/rounds"
r=1
while [ $r -le "$ROUNDS" ]; do
	pp64=$(pingpong 64) || die "fi_pingpong 64 B failed (provider $PROV)"
	pp4k=$(pingpong 4096) || die "fi_pingpong 4096 B failed (provider $PROV)"
	SPANVM_PROVIDER=$PROV "$BIN" --iters "$ITERS" --spin-ns "$SPIN" >"$TMP/ours.txt" ||
		die "bench_transport failed"
	msg=$(grep '"msg_rtt"' "$TMP/ours.txt")
	rma=$(grep '"rma_read"' "$TMP/ours.txt")
	echo "$r $(awk -v x="$pp64" 'BEGIN{print 2*x}') $(awk -v x="$pp4k" 'BEGIN{print 2*x}') \
$(field mean_us "$msg") $(field p50_us "$msg") $(field p99_us "$msg") \
$(field mean_us "$rma") $(field p50_us "$rma") $(field p99_us "$rma")" >>"$TMP/rounds"
	r=$((r + 1))
done

col() { awk -v c="$1" '{ print $c }' "$TMP/rounds" | median; }
PP64=$(col 2); PP4K=$(col 3)
MSG_MEAN=$(col 4); MSG_P50=$(col 5); MSG_P99=$(col 6)
RMA_MEAN=$(col 7); RMA_P50=$(col 8); RMA_P99=$(col 9)
MSG_RATIO=$(awk -v a="$MSG_MEAN" -v b="$PP64" 'BEGIN { printf "%.3f", a / b }')
RMA_RATIO=$(awk -v a="$RMA_MEAN" -v b="$PP4K" 'BEGIN { printf "%.3f", a / b }')
MSG_P50_RATIO=$(awk -v a="$MSG_P50" -v b="$PP64" 'BEGIN { printf "%.3f", a / b }')
RMA_P50_RATIO=$(awk -v a="$RMA_P50" -v b="$PP4K" 'BEGIN { printf "%.3f", a / b }')
MSG_ROUND_RATIOS=$(awk '{ printf "%s%.3f", (NR > 1 ? "," : ""), $4 / $2 }' "$TMP/rounds")
RMA_ROUND_RATIOS=$(awk '{ printf "%s%.3f", (NR > 1 ? "," : ""), $7 / $3 }' "$TMP/rounds")
MSG_OK=$(awk -v r="$MSG_RATIO" 'BEGIN { print (r <= 1.25) ? "true" : "false" }')
RMA_OK=$(awk -v r="$RMA_RATIO" 'BEGIN { print (r <= 1.5) ? "true" : "false" }')
REV=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
ROUNDS_JSON=$(awk 'BEGIN { printf "[" } NR > 1 { printf "," }
	{ printf "{\"round\":%d,\"pingpong_msg64_rtt_us\":%s,\"pingpong_msg4k_rtt_us\":%s,\"msg_mean_us\":%s,\"msg_p50_us\":%s,\"msg_p99_us\":%s,\"rma_mean_us\":%s,\"rma_p50_us\":%s,\"rma_p99_us\":%s}", $1, $2, $3, $4, $5, $6, $7, $8, $9 }
	END { printf "]" }' "$TMP/rounds")

cat >"$OUT" <<JSON
{"bench":"transport","git_rev":"$REV","provider":"$PROV","host":"$(hostname)","date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","cpus":$(nproc),"iters":$ITERS,"rounds":$ROUNDS,"spin_ns":$SPIN,
 "ours":{"msg_rtt_size":64,"msg_rtt_mean_us":$MSG_MEAN,"msg_rtt_p50_us":$MSG_P50,"msg_rtt_p99_us":$MSG_P99,
         "rma_read_size":4096,"rma_read_mean_us":$RMA_MEAN,"rma_read_p50_us":$RMA_P50,"rma_read_p99_us":$RMA_P99},
 "baseline":{"tool":"fi_pingpong -e rdm","msg64_rtt_us":$PP64,"msg4k_rtt_us":$PP4K,
             "note":"round trip = 2 x usec/xfer; no RMA mode, so the 4 KiB message round trip is the RMA read baseline"},
 "msg_rtt_ratio":$MSG_RATIO,"rma_read_ratio":$RMA_RATIO,
 "msg_rtt_ratio_p50_vs_baseline":$MSG_P50_RATIO,"rma_read_ratio_p50_vs_baseline":$RMA_P50_RATIO,
 "per_round_ratios":{"msg":[$MSG_ROUND_RATIOS],"rma":[$RMA_ROUND_RATIOS]},
 "targets":{"msg_rtt_ratio":1.25,"rma_read_ratio":1.5},"msg_ok":$MSG_OK,"rma_ok":$RMA_OK,
 "raw":$ROUNDS_JSON}
JSON

printf '%-28s %12s %12s %12s %12s\n' "transport ($PROV)" "mean us" "p50 us" "p99 us" "baseline us"
printf '%-28s %12s %12s %12s %12s\n' "msg round trip 64 B" "$MSG_MEAN" "$MSG_P50" "$MSG_P99" "$PP64"
printf '%-28s %12s %12s %12s %12s\n' "RMA read 4 KiB" "$RMA_MEAN" "$RMA_P50" "$RMA_P99" "$PP4K"
echo "msg_rtt_ratio $MSG_RATIO (target <= 1.25, ok=$MSG_OK)  rma_read_ratio $RMA_RATIO (target <= 1.5, ok=$RMA_OK)"
echo "wrote $OUT"
