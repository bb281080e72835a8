#!/usr/bin/env bash
# Data parallelism behind one endpoint (issue 13): `pagoda bench serve` against `pagoda serve` with
# --data-parallel-size 1 and 2 (one thread per engine), output throughput and TTFT p50/p99 at concurrency 32
# on the random dataset; then the prefix-cache hit rate and TTFT of prefix-aware routing against the load
# score alone (--data-parallel-routing load) on the prefix_repetition dataset, DP=2, with 16 shared prefixes
# that fit in the two engines' caches together but not in one (KV_SMALL_BYTES per engine, default 120 MB: 305
# blocks of the Qwen2.5-0.5B shape, about 9 prefixes): load-only routing makes every engine cycle through every
# prefix and evict them, prefix-aware routing gives each engine half.
#   ONLY=prefix Benchmarks/data-parallel/run.sh ...   runs the prefix comparison alone.
#   Benchmarks/data-parallel/run.sh [PAGODA_BINARY] [MODEL_DIR]
# MODEL_DIR defaults to /tmp/pagoda-qwen2.5-0.5b (made with `pagoda make-random-model --shape qwen2.5-0.5b`).
set -euo pipefail
PAGODA="$(realpath "${1:-$(dirname "$0")/../../.build/release/pagoda}")"
MODEL="${2:-/tmp/pagoda-qwen2.5-0.5b}"
[ -d "$MODEL" ] || "$PAGODA" make-random-model --shape qwen2.5-0.5b --output "$MODEL" --seed 1
WORK="$(mktemp -d)"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
source "$(dirname "$0")/../serve-lib.sh"

serve() {  # args for pagoda serve
  serve_pagoda 60 "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name m --max-model-len 2048 \
    --threads 1 --disable-log-requests "$@"
}

bench() {  # label, then bench serve args
  local label=$1; shift
  "$PAGODA" bench serve --base-url "http://127.0.0.1:$PORT" --model "$MODEL" --served-model-name m \
    --percentile-metrics ttft,tpot --metric-percentiles 50,99 --save-result \
    --result-dir "$WORK" --result-filename "$label.json" --disable-tqdm "$@" > "$WORK/$label.txt"
  python3 - "$WORK/$label.json" "$label" "$(curl -s "http://127.0.0.1:$PORT/load")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); load = json.loads(sys.argv[3])
engines = load.get("engines") or []
hits = sum(e["prefix_cache_hits"] for e in engines); queries = sum(e["prefix_cache_queries"] for e in engines)
rate = f"  prefix-cache hits {hits}/{queries} = {hits / queries:.2f}" if queries else ""
print(f"{sys.argv[2]:<26} {r['completed']:>4} ok {r.get('failed', 0)} failed  output {r['output_throughput']:8.1f} tok/s"
      f"  TTFT p50 {r['p50_ttft_ms']:8.1f} ms  p99 {r['p99_ttft_ms']:8.1f} ms{rate}")
PY
}

RANDOM_ARGS=(--dataset-name random --random-input-len 256 --random-output-len 64 --num-prompts 96 --ignore-eos --seed 1
             --max-concurrency 32)
PREFIX_ARGS=(--dataset-name prefix_repetition --prefix-repetition-prefix-len 512 --prefix-repetition-suffix-len 32
             --prefix-repetition-num-prefixes 16 --prefix-repetition-output-len 16 --num-prompts 192 --seed 1
             --max-concurrency 8)
KV_BIG=(--kv-cache-memory-bytes 2000000000)
KV_SMALL=(--kv-cache-memory-bytes "${KV_SMALL_BYTES:-120000000}")

if [ "${ONLY:-}" != prefix ]; then
  serve "${KV_BIG[@]}"; bench "DP=1 random" "${RANDOM_ARGS[@]}"; stop
  serve "${KV_BIG[@]}" --data-parallel-size 2; bench "DP=2 random" "${RANDOM_ARGS[@]}"; stop
fi
serve "${KV_SMALL[@]}" --data-parallel-size 2 --data-parallel-routing load; bench "DP=2 prefix_rep, load" "${PREFIX_ARGS[@]}"; stop
serve "${KV_SMALL[@]}" --data-parallel-size 2 --data-parallel-routing prefix; bench "DP=2 prefix_rep, prefix" "${PREFIX_ARGS[@]}"; stop
