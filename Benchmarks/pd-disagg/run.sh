#!/usr/bin/env bash
# Prefill/decode disaggregation (issue 14), on the Qwen2.5-0.5B-shaped random model:
#  1. KV transfer bandwidth over loopback next to a memcpy of the same blocks (`pagoda bench kv-transfer`,
#     producer TP 1 and 2).
#  2. `pagoda bench serve`: TTFT and ITL p50/p99 of one server versus a 1P1D pair behind
#     `pagoda disagg-proxy`, at the same load: long prompts/short outputs, short prompts/long outputs, and a
#     mixed load (a decode-heavy stream whose ITL is reported, while a second client sends long prompts).
# CPUs: the single server runs twice, on CPUS_SINGLE (default 0,1) with one thread per CPU ("single") and on
# CPU_DECODE alone with one thread ("1cpu"); in the pair the prefill server is pinned to CPU_PREFILL (0) and the
# decode server to CPU_DECODE (1), one thread each (taskset: pagoda serve has no pinning flag). The clients and
# the proxy are not pinned.
#   Benchmarks/pd-disagg/run.sh [PAGODA_BINARY] [MODEL_DIR]
# PAGODA_BINARY defaults to .build/release/pagoda; MODEL_DIR to /tmp/pagoda-qwen2.5-0.5b (made when missing).
# SCALE=2 doubles every request count; LONG_LEN sets the long prompts' length (default 256 tokens).
set -euo pipefail
PAGODA="$(realpath "${1:-$(dirname "$0")/../../.build/release/pagoda}")"
MODEL="${2:-/tmp/pagoda-qwen2.5-0.5b}"
SCALE="${SCALE:-1}"
CPUS_SINGLE="${CPUS_SINGLE:-0,1}"; CPU_PREFILL="${CPU_PREFILL:-0}"; CPU_DECODE="${CPU_DECODE:-1}"
[ -d "$MODEL" ] || "$PAGODA" make-random-model --shape qwen2.5-0.5b --output "$MODEL" --seed 1
WORK="$(mktemp -d -t pagoda-pd-bench.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

echo "== KV transfer bandwidth (Qwen2.5-0.5B KV shape, 4096-token prompt: 96 MiB; medians of 7) =="
for tp in 1 2; do
  echo "producer TP=$tp: $("$PAGODA" bench kv-transfer --tokens 4096 --producer-tp "$tp" --num-iters 7 | tail -1)"
done

wait_up() {  # port pid log
  for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$1/health" > /dev/null && return
    kill -0 "$2" 2>/dev/null || { cat "$3"; exit 1; }
    sleep 0.1
  done
  echo "server on port $1 not up"; cat "$3"; exit 1
}
serve() {  # name cpus threads port [args...]
  local name=$1 cpus=$2 threads=$3 port=$4; shift 4
  taskset -c "$cpus" "$PAGODA" serve "$MODEL" --host 127.0.0.1 --port "$port" --served-model-name m --max-model-len "${MAX_LEN:-2048}" \
    --max-num-batched-tokens "${MAX_LEN:-2048}" --threads "$threads" --kv-cache-memory-bytes "${KV_BYTES:-600000000}" --disable-log-requests "$@" \
    > "$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_up "$port" $! "$WORK/$name.log"
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }

bench() {  # port label args...
  local port=$1 label=$2; shift 2
  "$PAGODA" bench serve --base-url "http://127.0.0.1:$port" --model "$MODEL" --served-model-name m \
    --dataset-name random --ignore-eos --seed 1 --percentile-metrics ttft,itl --metric-percentiles 50,99 --save-result \
    --result-dir "$WORK" --result-filename "$label.json" --disable-tqdm "$@" > "$WORK/$label.txt" 2>&1 \
    || { cat "$WORK/$label.txt"; exit 1; }
}
report() {  # setup label
  python3 - "$WORK/$2.json" "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<7} {sys.argv[3]:<22} {r['completed']:>3} ok {r.get('failed', 0)} failed"
      f"  TTFT p50 {r['p50_ttft_ms']:8.1f} p99 {r['p99_ttft_ms']:8.1f} ms"
      f"  ITL p50 {r['p50_itl_ms']:7.1f} p99 {r['p99_itl_ms']:7.1f} ms")
PY
}

# Sizes fit a few minutes on 2 contended cores; LONG_LEN (default 256) and SCALE (default 1) raise them.
LONG_LEN="${LONG_LEN:-256}"
LONG=(--random-input-len "$LONG_LEN" --random-output-len 4 --num-prompts $((4 * SCALE)) --max-concurrency 2)
SHORT=(--random-input-len 16 --random-output-len 48 --num-prompts $((4 * SCALE)) --max-concurrency 4)
# Mixed: the decode stream (reported) runs while a second client keeps one long prompt in flight.
MIX_DECODE=(--random-input-len 16 --random-output-len 64 --num-prompts $((4 * SCALE)) --max-concurrency 4)
MIX_PREFILL=(--random-input-len "$LONG_LEN" --random-output-len 2 --num-prompts $((4 * SCALE)) --max-concurrency 1 --seed 2)

workloads() {  # setup port
  local setup=$1 port=$2
  bench "$port" "$setup-long" "${LONG[@]}"; report "$setup" "$setup-long"
  bench "$port" "$setup-short" "${SHORT[@]}"; report "$setup" "$setup-short"
  bench "$port" "$setup-mix-prefill" "${MIX_PREFILL[@]}" &
  local bg=$!
  sleep 1  # the long prompts are flowing when the decode stream starts
  bench "$port" "$setup-mixed" "${MIX_DECODE[@]}"; report "$setup" "$setup-mixed"
  wait "$bg" || true
}

echo "== bench serve (TTFT/ITL; ms) =="
# One server on both CPUs (a thread each), then on one CPU (the pair's decode CPU) with one thread.
P=$(free_port); serve single "$CPUS_SINGLE" "$(awk -F, '{print NF}' <<< "$CPUS_SINGLE")" "$P"
workloads single "$P"
stop_all
P=$(free_port); serve single1 "$CPU_DECODE" 1 "$P"
workloads 1cpu "$P"
stop_all

PP=$(free_port); DP=$(free_port); XP=$(free_port)
# The pair proves a shared secret to each other on every KV read (README: --internal-secret-file).
(umask 077; python3 -c 'import secrets;print(secrets.token_hex(32))' > "$WORK/secret")
serve prefill "$CPU_PREFILL" 1 "$PP" --internal-secret-file "$WORK/secret" \
  --kv-transfer-config '{"kv_connector":"TCPConnector","kv_role":"kv_producer","kv_port":0}'
serve decode "$CPU_DECODE" 1 "$DP" --internal-secret-file "$WORK/secret" \
  --kv-transfer-config '{"kv_connector":"TCPConnector","kv_role":"kv_consumer"}'
"$PAGODA" disagg-proxy --host 127.0.0.1 --port "$XP" --prefill "127.0.0.1:$PP" --decode "127.0.0.1:$DP" > "$WORK/proxy.log" 2>&1 &
PIDS+=($!)
wait_up "$XP" $! "$WORK/proxy.log"
workloads 1P1D "$XP"
M=$(curl -s "http://127.0.0.1:$DP/metrics")
python3 - "$M" <<'PY'
import re, sys
v = {}
for line in sys.argv[1].splitlines():
    m = re.match(r"^(vllm:kv_transfer_\w+)(?:\{[^}]*\})? (\S+)$", line)
    if m: v[m.group(1)] = v.get(m.group(1), 0) + float(m.group(2))
t, b, s = v.get("vllm:kv_transfer_requests_total", 0), v.get("vllm:kv_transfer_bytes_total", 0), v.get("vllm:kv_transfer_seconds_total", 0)
print(f"decode server: {t:.0f} KV transfers, {b / 2**20:.0f} MiB in {s:.2f} s (connect and wait included), "
      f"{v.get('vllm:kv_transfer_recomputes_total', 0):.0f} recomputes")
PY
stop_all
