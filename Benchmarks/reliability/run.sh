#!/usr/bin/env bash
# Regenerates the reliability report (issue 18): every fault test under load, the soak at full scale (1,000
# concurrent streams against `pagoda serve` and through `pagoda proxy`), and each fuzz target for a while.
#   Benchmarks/reliability/run.sh [--soak-streams N] [--skip-soak] [--fuzz-seconds N] [--fuzz-logs] [--skip-fuzz] [--only TEXT]
# Needs a debug build (`swift build --build-tests`) and the e2e test packages (Tests/e2e/requirements.txt); the
# headless-node fault needs root for `ip netns`. Writes Benchmarks/reliability/report.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .build/debug/pagoda ] || { echo "error: .build/debug/pagoda not built: run swift build --build-tests" >&2; exit 1; }
exec python3 Benchmarks/reliability/report.py "$@"
