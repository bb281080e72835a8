#!/usr/bin/env bash
# Builds llama.cpp's tools (llama-bench, llama-batched-bench, llama-server, llama-cli, llama-simple,
# llama-quantize and libllama) in Release with native CPU flags, from the llama.cpp tree vendored in the
# llama_cpp_python source distribution on PyPI (pinned), so the side-by-side benchmark and the oracles run
# against a known llama.cpp without reaching GitHub.
#   Benchmarks/llama-cpp/build.sh [DIR]     (default: .build/llama.cpp of the repository)
# Result: DIR/src (the unpacked llama.cpp tree, with gguf-py and convert_hf_to_gguf.py), DIR/build/bin (tools
# and shared libraries). Installs cmake from Debian when missing. JOBS (default 2) sets the parallel build jobs.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
DIR="$(realpath -m "${1:-$ROOT/.build/llama.cpp}")"
VERSION=0.3.36
JOBS="${JOBS:-2}"
mkdir -p "$DIR"

if ! command -v cmake >/dev/null; then
  apt-get install -y cmake >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y cmake >/dev/null; }
fi

if [ ! -f "$DIR/src/CMakeLists.txt" ]; then
  # --no-binary for this one package only: with :all: pip would build cmake itself from source.
  pip download --no-deps --no-binary llama_cpp_python "llama_cpp_python==$VERSION" -d "$DIR/sdist" >/dev/null
  archive=$(ls "$DIR"/sdist/llama_cpp_python-"$VERSION".tar.gz)
  rm -rf "$DIR/unpack" "$DIR/src"
  mkdir -p "$DIR/unpack"
  tar -xzf "$archive" -C "$DIR/unpack"
  mv "$DIR/unpack/llama_cpp_python-$VERSION/vendor/llama.cpp" "$DIR/src"
  rm -rf "$DIR/unpack"
fi

cmake -S "$DIR/src" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_SERVER=ON >/dev/null
cmake --build "$DIR/build" -j "$JOBS" --target llama-bench llama-batched-bench llama-server llama-cli \
  llama-simple llama-quantize llama
for tool in llama-bench llama-batched-bench llama-server llama-cli llama-simple llama-quantize; do
  [ -x "$DIR/build/bin/$tool" ] || { echo "build.sh: $tool was not built" >&2; exit 1; }
done
echo "$DIR/build/bin"
