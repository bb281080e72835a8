#!/usr/bin/env bash
# Decode cost of structured outputs: `pagoda bench latency` at batch 1 and 32, without and with a JSON-schema
# constraint (person.schema.json), on a random model of the Qwen2.5-0.5B shape, alternated REPEATS times so both see
# the same machine load; prints each run's decode step time and then the medians and the constrained/free ratio. The
# constrained runs also print the one-time costs (vocabulary trie, schema compile, first mask) and the mask work per
# step measured without a model.
# Usage: run.sh [PAGODA] [MODEL_DIR] [OUTPUT_LEN] [REPEATS] (measured iterations per run in ITERS, default 3; extra
# `bench latency` flags in BENCH_FLAGS, e.g. --threads 2)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
pagoda="${1:-$here/../../.build/debug/pagoda}"  # numeric and structured-output modules are optimized even in debug
model="${2:-/tmp/pagoda-bench-qwen2.5-0.5b}"
out_len="${3:-64}"
repeats="${4:-3}"
[ -d "$model" ] || "$pagoda" make-random-model --shape qwen2.5-0.5b --output "$model" --seed 1
step_ms() { sed -n 's/^Per-token latency (decode step): \([0-9.]*\) ms.*/\1/p'; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for bs in 1 32; do
    free=(); json=()
    for r in $(seq "$repeats"); do
        echo "== batch $bs, run $r, free text"
        out="$("$pagoda" bench latency "$model" --input-len 32 --output-len "$out_len" --batch-size "$bs" \
            --num-iters-warmup 1 --num-iters "${ITERS:-3}" ${BENCH_FLAGS:-})"
        echo "$out" | tail -2
        free+=("$(echo "$out" | step_ms)")
        echo "== batch $bs, run $r, JSON schema"
        out="$("$pagoda" bench latency "$model" --input-len 32 --output-len "$out_len" --batch-size "$bs" \
            --num-iters-warmup 1 --num-iters "${ITERS:-3}" --json-schema "$here/person.schema.json" ${BENCH_FLAGS:-})"
        echo "$out" | grep -E '^(Structured|Mask work)'
        echo "$out" | tail -2
        json+=("$(echo "$out" | step_ms)")
    done
    f="$(printf '%s\n' "${free[@]}" | median)"; j="$(printf '%s\n' "${json[@]}" | median)"
    echo "## batch $bs: decode step median free ${f} ms, JSON schema ${j} ms ($(awk -v f="$f" -v j="$j" 'BEGIN {printf "%+.1f %%", (j / f - 1) * 100}'))" \
        "over $repeats runs (free: ${free[*]}; JSON: ${json[*]})"
done
