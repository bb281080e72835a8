#!/usr/bin/env bash
# Proxy overhead benchmark (issue 8): the added latency of `pagoda proxy` (p50/p99) and the most requests/s
# it sustains in front of a backend that answers at once (an nginx stub, as in vllm-ascend's measurement),
# at concurrency 1, 16 and 64, measured with wrk.
#   Benchmarks/proxy/run.sh [PAGODA_BINARY] [SECONDS]
# Needs: wrk, nginx (apt-get install wrk nginx-light). Build first: swift build -c release --product pagoda
set -euo pipefail
PAGODA="$(realpath "${1:-$(dirname "$0")/../../.build/release/pagoda}")"
cd "$(dirname "$0")"
SECONDS_EACH="${2:-10}"
WORK="$(mktemp -d)"
STUB_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PROXY_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

sed "s/@PORT@/$STUB_PORT/; s#@WORK@#$WORK#g" nginx-stub.conf > "$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" &
PIDS+=($!)
"$PAGODA" proxy --host 127.0.0.1 --port "$PROXY_PORT" --backends "127.0.0.1:$STUB_PORT" > "$WORK/proxy.log" 2>&1 &
PIDS+=($!)
for url in "http://127.0.0.1:$STUB_PORT/health" "http://127.0.0.1:$PROXY_PORT/health"; do
  for i in $(seq 300); do
    curl -sf "$url" > /dev/null && break
    [ "$i" = 300 ] && { echo "$url not up after 30 s"; cat "$WORK/proxy.log"; exit 1; }
    sleep 0.1
  done
done

run() {  # label port connections
  local threads=$(( $3 < 2 ? 1 : 2 ))
  wrk -t"$threads" -c"$3" -d"${SECONDS_EACH}s" --latency -s post.lua "http://127.0.0.1:$2/v1/completions" > "$WORK/wrk.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.txt")
  local errors
  errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.txt" | tr '\n' ' ')
  printf '%-8s c=%-3s %10s req/s  p50 %-9s p99 %-9s %s\n' "$1" "$3" "$rps" "$p50" "$p99" "$errors"
}

echo "stub: nginx on :$STUB_PORT; proxy: $PAGODA on :$PROXY_PORT; ${SECONDS_EACH}s per run; $(nproc) cores"
for c in 1 16 64; do
  run direct "$STUB_PORT" "$c"
  run proxy "$PROXY_PORT" "$c"
done
curl -s "http://127.0.0.1:$PROXY_PORT/metrics" | grep -E '^pagoda_proxy_backend_(in_flight_cost|requests_routed_total|failures_total)'
