# Sourced by the benchmark scripts (PAGODA, PORT and WORK set first): run `pagoda serve` in the background until
# /health answers, stop it, and clean up on exit.
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

serve_pagoda() {  # seconds to wait for /health, then the arguments of `pagoda serve`
  local tries=$(( $1 * 10 )); shift
  "$PAGODA" serve "$@" > "$WORK/serve.log" 2>&1 &
  SERVER=$!
  for i in $(seq "$tries"); do
    curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && return
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
    sleep 0.1
  done
  echo "server not up"; cat "$WORK/serve.log"; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }
