#!/usr/bin/env bash
# Decode and prefill speed of the engine (issue 4's figures): on the Qwen2.5-0.5B-shaped random model, batch-1
# decode tokens/s at each thread count with the fraction of the memory-bandwidth limit it reaches (weight bytes
# read per step × tokens/s ÷ the read bandwidth that ../shared/tools/readbw.c measures right before), decode
# throughput at batch 8 and 32 and their ratio to batch 1, and prefill tokens/s of a 512-token prompt.
#   Benchmarks/decode/run.sh [PAGODA_BINARY] [DTYPE ...]   (DTYPE: auto = bf16 activations | float32; default: both)
# Build first: swift build -c release --product pagoda. Needs gcc with OpenMP for readbw.
set -euo pipefail
PAGODA="$(realpath "${1:-$(dirname "$0")/../../.build/release/pagoda}")"
shift || true
DTYPES=("${@:-auto float32}")
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODEL="${PAGODA_BENCH_MODEL:-/tmp/pagoda-qwen2.5-0.5b}"
READBW_SRC="${READBW_SRC:-$ROOT/../shared/tools/readbw.c}"
READBW=/tmp/pagoda-readbw
[ -x "$READBW" ] || gcc -O3 -march=native -fopenmp "$READBW_SRC" -o "$READBW"
[ -f "$MODEL/config.json" ] || "$PAGODA" make-random-model --shape qwen2.5-0.5b --output "$MODEL" --seed 1
GB=$(python3 -c "import os,json;print(os.path.getsize('$MODEL/model.safetensors')/1e9)")

bench() {  # threads dtype input output batch -> prints "prefill_tok_s decode_tok_s"
  local out
  out=$("$PAGODA" bench latency "$MODEL" --greedy --max-model-len 1024 --kv-cache-memory-bytes 1000000000 \
    --num-iters-warmup 1 --num-iters 3 --threads "$1" --dtype "$2" --input-len "$3" --output-len "$4" \
    --batch-size "$5" 2>/dev/null)
  echo "$(awk '/^Prefill:/ {gsub("[(]","",$4); print $4}' <<<"$out") $(awk '/decode throughput/ {print $(NF-1)}' <<<"$out")"
}

echo "model $MODEL ($GB GB of weights per decode step), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for dtype in ${DTYPES[*]}; do
  for t in 1 2; do
    bw=$(OMP_NUM_THREADS=$t "$READBW" 1024 10 | awk '{print $(NF-4)}')
    read -r _ d1 <<<"$(bench "$t" "$dtype" 32 32 1)"
    read -r _ d8 <<<"$(bench "$t" "$dtype" 32 32 8)"
    read -r _ d32 <<<"$(bench "$t" "$dtype" 32 32 32)"
    read -r p512 _ <<<"$(bench "$t" "$dtype" 512 2 1)"
    python3 - "$dtype" "$t" "$bw" "$d1" "$d8" "$d32" "$p512" "$GB" <<'PY'
import sys
dt, t, bw, d1, d8, d32, p512, gb = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
print(f"--dtype {dt:8s} --threads {t}: readbw {bw:.1f} GB/s | batch 1 {d1:.1f} tok/s = {gb*d1:.1f} GB/s = "
      f"{100*gb*d1/bw:.0f}% | batch 8 {d8:.1f} | batch 32 {d32:.1f} tok/s = {d32/d1:.2f}x batch 1 | prefill 512: {p512:.0f} tok/s")
PY
  done
done
