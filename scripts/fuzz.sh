#!/usr/bin/env bash
# Coverage-guided fuzzing of Pagoda's parsers of untrusted bytes (Sources/PagodaFuzzing/FuzzTarget.swift) with
# libFuzzer and AddressSanitizer.
#   scripts/fuzz.sh TARGET [SECONDS] [extra libFuzzer flags]   fuzz one target (default 120 s)
#   scripts/fuzz.sh all [SECONDS]                               every target in turn
# Builds `pagoda-fuzz` with -sanitize=fuzzer,address in .build/fuzz (a separate build folder). Starts from the
# committed corpus Tests/FuzzCorpus/TARGET; new inputs go to .build/fuzz-corpus/TARGET (merge the interesting ones
# into the committed corpus with `-merge=1`); a crash or a timeout leaves its input in .build/fuzz-artifacts/TARGET/
# — add it to Tests/FuzzCorpus/TARGET as `regression-NAME` once fixed, so CI replays it (PagodaFuzzingTests).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS] [libFuzzer flags]}"
SECONDS_EACH="${2:-120}"
shift $(( $# >= 2 ? 2 : 1 ))
# Linked with the toolchain's lld (gold stops with an internal error on this binary).
mkdir -p .build
LLD="$(dirname "$(readlink -f "$(command -v swift)")")/ld.lld"
[ -x "$LLD" ] || { echo "error: $LLD not found (the fuzz build links with the Swift toolchain's lld)" >&2; exit 1; }
printf '{"schemaVersion": "1.0", "linker": {"path": "%s"}}\n' "$LLD" > .build/fuzz-toolset.json
swift build --product pagoda-fuzz --build-path .build/fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DPAGODA_FUZZ \
  --toolset .build/fuzz-toolset.json \
  2>&1 | grep -v "warning: Cannot export local symbol" | grep -E "error|warning: |Compiling pagoda|Build complete" || true
BIN=.build/fuzz/debug/pagoda-fuzz
[ -x "$BIN" ] || { echo "error: $BIN was not built" >&2; exit 1; }
if [ "$TARGET" = all ]; then
  TARGETS=$(ls Tests/FuzzCorpus | grep -v '\.py$')
else
  TARGETS="$TARGET"
fi
status=0
for t in $TARGETS; do
  [ -d "Tests/FuzzCorpus/$t" ] || { echo "error: no corpus folder Tests/FuzzCorpus/$t" >&2; exit 1; }
  mkdir -p ".build/fuzz-corpus/$t" ".build/fuzz-artifacts/$t"
  echo "== $t: ${SECONDS_EACH} s"
  # -timeout: an input that takes over 10 s is a hang (reported as a timeout artifact); -rss_limit_mb bounds memory.
  if ! PAGODA_FUZZ_TARGET="$t" "$BIN" ".build/fuzz-corpus/$t" "Tests/FuzzCorpus/$t" -max_total_time="$SECONDS_EACH" \
      -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 -artifact_prefix=".build/fuzz-artifacts/$t/" "$@" \
      > ".build/fuzz-artifacts/$t/log.txt" 2>&1; then
    status=1
    echo "   found a failure: $(ls .build/fuzz-artifacts/$t | grep -v log.txt | head -3 | tr '\n' ' ')"
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" ".build/fuzz-artifacts/$t/log.txt" | sed 's/^/   /'
done
exit $status
