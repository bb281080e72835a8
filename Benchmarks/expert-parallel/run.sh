#!/usr/bin/env bash
# Expert parallelism (issue 17): decode throughput at concurrency 16 of a MoE model shaped like Qwen3-30B-A3B
# (its layer shapes, 4 layers of 32 experts, random weights: `pagoda make-random-model --shape
# qwen3-30b-a3b-scaled`), EP over DP=2 (--enable-expert-parallel, 2 engine cores stepping in waves) against
# TP=2 without EP (experts split inside), one thread per worker. Prints output throughput, TPOT, and the
# all-to-all time per step (pagoda:ep_all_to_all_seconds_total / pagoda:ep_steps_total of the EP run).
#   Benchmarks/expert-parallel/run.sh [PAGODA_BINARY] [MODEL_DIR]
set -euo pipefail
PAGODA="$(realpath "${1:-$(dirname "$0")/../../.build/release/pagoda}")"
MODEL="${2:-/tmp/pagoda-qwen3-30b-a3b-scaled}"
[ -d "$MODEL" ] || "$PAGODA" make-random-model --shape qwen3-30b-a3b-scaled --output "$MODEL" --seed 1
WORK="$(mktemp -d)"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
source "$(dirname "$0")/../serve-lib.sh"

serve() {  # args for pagoda serve
  serve_pagoda 180 "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name m --max-model-len 1024 \
    --threads 1 --kv-cache-memory-bytes 400000000 --disable-log-requests --expert-load-report-interval 20 "$@"
}

bench() {  # label
  local label=$1
  "$PAGODA" bench serve --base-url "http://127.0.0.1:$PORT" --model "$MODEL" --served-model-name m \
    --dataset-name random --random-input-len 32 --random-output-len "${OUTPUT_LEN:-48}" --num-prompts 32 --ignore-eos \
    --seed 1 --max-concurrency 16 --percentile-metrics ttft,tpot --metric-percentiles 50 --save-result \
    --result-dir "$WORK" --result-filename "$label.json" --disable-tqdm > "$WORK/$label.txt"
  python3 - "$WORK/$label.json" "$label" "$(curl -s "http://127.0.0.1:$PORT/metrics")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def total(name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in sys.argv[3].splitlines() if l.startswith(name + "{"))
steps, a2a = total("pagoda:ep_steps_total"), total("pagoda:ep_all_to_all_seconds_total")
counts = total("pagoda:ep_counts_exchange_seconds_total")
extra = (f"  all-to-all {a2a / steps * 1000:.2f} ms per step per rank, of which {counts / steps * 1000:.2f} ms in the counts"
         f" exchange (waiting for the slowest rank; {steps:.0f} rank-steps)") if steps else ""
print(f"{sys.argv[2]:<22} {r['completed']:>3} ok  output {r['output_throughput']:7.1f} tok/s"
      f"  TPOT p50 {r['p50_tpot_ms']:7.1f} ms  TTFT p50 {r['p50_ttft_ms']:7.1f} ms{extra}")
PY
}

serve -tp 2; bench "TP=2 (no EP)"; stop
serve --data-parallel-size 2 --enable-expert-parallel; bench "EP over DP=2"
grep -m1 "expert load at EP step" "$WORK/serve.log" || true
stop
