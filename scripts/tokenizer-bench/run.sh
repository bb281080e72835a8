#!/bin/sh
# Tokenizer encode benchmark: PagodaTokenizer (swiftc -O, one thread) vs Hugging Face `tokenizers` (one thread)
# on the same ~4 MB mixed multilingual text. Needs `pip install tokenizers`.
# Usage: scripts/tokenizer-bench/run.sh [tokenizer names...]   (default: qwen2 llama3)
set -e
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
conf=${PAGODA_CONFORMANCE:-$repo/../shared/conformance}
out=${TMPDIR:-/tmp}/pagoda-tokenizer-bench
mkdir -p "$out"
python3 "$here/make_text.py" "$out/text.txt"
# All of the module's sources (chat templates included) plus the driver, as one optimized module.
swiftc -O -module-name PagodaTokenizerBench -o "$out/bench" $(find "$repo/Sources/PagodaTokenizer" -name '*.swift') "$here/main.swift"
for name in ${@:-qwen2 llama3}; do
    "$out/bench" "$conf/tokenizers/$name" "$out/text.txt"
    python3 "$here/hf_bench.py" "$conf/tokenizers/$name" "$out/text.txt"
done
