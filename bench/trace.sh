#!/bin/sh
# bench/trace.sh BUILD_DIR
#
# Write-trace benchmarks, each next to its baseline in the same run
# (rounds interleave the variants so machine noise hits both alike;
# medians over rounds):
#  (a) trace_asid guest (8 address spaces, satp switch + sfence.vma, 16
#      pages each): walks retained across sfence.vma by the traces
#      (--retain-walks) vs the flush-everything baseline (traces on, walks
#      flushed).  retention_speedup = flush / retain.  Also reported: the
#      same against a run with no traces at all (--no-trace).  Measured in
#      CPU seconds of the (single-hart) process, wall time also reported:
#      on a shared machine wall time is mostly other people's load.
#  (b) trace_jit guest (3 harts, hart 0 generates code, the others run it):
#      exact results (exit code) and its time with traces vs --no-trace.
#  (c) bench_trace_kofn: one traced write with k of N vCPUs subscribed,
#      targeted vs broadcast-to-all.
# Writes BUILD_DIR/bench/trace.json.  Env: BENCH_ROUNDS (5), BENCH_WRITES (2000).
set -eu

BUILD=${1:-build}
ROUNDS=${BENCH_ROUNDS:-5}
WRITES=${BENCH_WRITES:-2000}
SPANVM=$BUILD/bin/spanvm
KOFN=$BUILD/bin/bench_trace_kofn
GUESTS=$BUILD/guest
OUT=$BUILD/bench/trace.json

die() { echo "bench/trace.sh: $*" >&2; exit 1; }
[ -x "$SPANVM" ] || die "$SPANVM not built (run: make build)"
[ -x "$KOFN" ] || die "$KOFN not built (run: make build)"
[ -x /usr/bin/time ] || die "/usr/bin/time missing (Debian package time)"
for g in trace_asid trace_jit; do
	[ -r "$GUESTS/$g.elf" ] || die "$GUESTS/$g.elf not built (riscv64-unknown-elf-gcc missing?)"
done
mkdir -p "$BUILD/bench"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# timed GUEST HARTS TAG [ARGS...]: runs, checks exit 0, appends wall seconds
# to TMP/TAG.s and CPU seconds (user + sys) to TMP/TAG.cpu
timed() {
	guest=$1 harts=$2 tag=$3
	shift 3
	if ! /usr/bin/time -f "%e %U %S" -o "$TMP/$tag.time" "$SPANVM" run "$GUESTS/$guest.elf" \
		--harts "$harts" --timeout 300 --stats-file "$TMP/$tag.stats" "$@" \
		>"$TMP/$tag.out" 2>&1; then
		cat "$TMP/$tag.out" >&2
		die "$guest ($tag) failed: the guest's result was not exact"
	fi
	tail -n 1 "$TMP/$tag.time" | awk '{ print $1 }' >>"$TMP/$tag.s"
	tail -n 1 "$TMP/$tag.time" | awk '{ printf "%.3f\n", $2 + $3 }' >>"$TMP/$tag.cpu"
}

stat_of() { # stat_of FILE PYEXPR over d (the stats JSON)
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}

r=0
while [ $r -lt "$ROUNDS" ]; do
	timed trace_asid 1 retain --retain-walks
	timed trace_asid 1 flush
	timed trace_asid 1 notrace --no-trace
	timed trace_jit 3 jit
	timed trace_jit 3 jitnotrace --no-trace
	r=$((r + 1))
done
"$KOFN" "$WRITES" >"$TMP/kofn.jsonl"

m() { median <"$TMP/$1.s"; }
c() { median <"$TMP/$1.cpu"; }
RET=$(c retain) FLU=$(c flush) NOT=$(c notrace) JIT=$(m jit) JNT=$(m jitnotrace)
RETW=$(m retain) FLUW=$(m flush) NOTW=$(m notrace)
HITS=$(stat_of "$TMP/retain.stats" "d['harts'][0]['walk_cache_hits']")
WALKS_R=$(stat_of "$TMP/retain.stats" "d['harts'][0]['walks']")
WALKS_F=$(stat_of "$TMP/flush.stats" "d['harts'][0]['walks']")
JIT_CODE=$(stat_of "$TMP/jit.stats" "d['trace']['totals']['kinds']['code']['notify_sent']")
JIT_NONSUB=$(stat_of "$TMP/jit.stats" "d['trace']['totals']['notify_nonsub']")

python3 - "$TMP/kofn.jsonl" "$OUT" <<EOF
import json, subprocess, sys, socket
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kofn = [r for r in rows if r["bench"] == "trace_kofn"]
summ = [r for r in rows if r["bench"] == "trace_kofn_summary"][0]
def rev():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
out = {
  "bench": "trace", "git": rev(), "host": socket.gethostname(), "rounds": $ROUNDS,
  "asid_switch": {
    "metric": "cpu seconds (user+sys) of the single-hart run: the machine is shared",
    "retain_cpu_s": $RET, "flush_cpu_s": $FLU, "no_trace_cpu_s": $NOT,
    "retain_wall_s": $RETW, "flush_wall_s": $FLUW, "no_trace_wall_s": $NOTW,
    "retain_walks": $WALKS_R, "retain_walk_cache_hits": $HITS, "flush_walks": $WALKS_F,
  },
  "retention_speedup": round($FLU / $RET, 2),
  "retention_speedup_vs_no_trace": round($NOT / $RET, 2),
  "jit": {"harts": 3, "exact": True, "metric": "wall seconds", "trace_s": $JIT, "no_trace_s": $JNT,
          "cost_ratio": round($JIT / $JNT, 2), "code_notifications": $JIT_CODE,
          "notify_nonsub": $JIT_NONSUB},
  "kofn": kofn,
  "kofn_growth_k1": summ,
}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(json.dumps({k: out[k] for k in ("retention_speedup", "retention_speedup_vs_no_trace")}))
print(json.dumps(out["jit"]))
print(json.dumps(summ))
EOF
echo "bench/trace.sh: wrote $OUT"
