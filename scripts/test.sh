#!/usr/bin/env bash
# Runs Pagoda's whole test suite: one debug build, the Swift tests, then the end-to-end tests
# (real `pagoda` processes on loopback, driven by the official `openai` client).
set -euo pipefail
cd "$(dirname "$0")/.."
export PAGODA_CONFORMANCE="${PAGODA_CONFORMANCE:-$(cd .. && pwd)/shared/conformance}"

swift build --build-tests
# Package.swift declares exactly what each target imports (a static check: see the script for why).
python3 scripts/check-imports.py
swift test --skip-build 2>&1 | tee .build/swift-test.log
python3 -m pytest -q Tests/e2e
