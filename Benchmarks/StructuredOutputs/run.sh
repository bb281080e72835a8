#!/usr/bin/env bash
# Decode cost of structured outputs: `pagoda bench latency` at batch 1 and 32, without and with a JSON-schema
# constraint (person.schema.json), on a random model of the Qwen2.5-0.5B shape; the constrained runs also print the
# one-time costs (vocabulary trie, schema compile, first mask). Usage: run.sh [PAGODA] [MODEL_DIR] [OUTPUT_LEN]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pagoda="${1:-$here/../../.build/debug/pagoda}"  # numeric and structured-output modules are optimized even in debug
model="${2:-/tmp/pagoda-bench-qwen2.5-0.5b}"
out_len="${3:-64}"
[ -d "$model" ] || "$pagoda" make-random-model --shape qwen2.5-0.5b --output "$model" --seed 1
for bs in 1 32; do
    echo "== batch $bs, free text"
    "$pagoda" bench latency "$model" --input-len 32 --output-len "$out_len" --batch-size "$bs" --num-iters-warmup 1 --num-iters 3
    echo "== batch $bs, JSON schema"
    "$pagoda" bench latency "$model" --input-len 32 --output-len "$out_len" --batch-size "$bs" --num-iters-warmup 1 --num-iters 3 \
        --json-schema "$here/person.schema.json"
done
