"""The reliability report of issue 18 (run by Benchmarks/reliability/run.sh): runs each fault test under load, the
soak at full scale (or carries the last report's soak over: --skip-soak) and every fuzz target, then writes a markdown table to report.md beside this file and prints it.

Each fault test is an ordinary pytest test (they also run in CI); this script runs them once more, times them, and
reads the `RELIABILITY key=value ...` lines a test prints (requests lost, the slowest clear error, leaked KV blocks)
where it measures them. For tests that only assert a bound, the table gives the bound they assert."""
import argparse
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (fault, pytest node id, what the test asserts about lost requests, time to a clear error, leaked blocks)
FAULTS = [
    ("kill -9 of the engine core (restarted)", "Tests/e2e/test_server_lifecycle.py::test_a_dead_single_engine_core_is_restarted_and_serves_again",
     "in-flight stream ends with an error; served again after restart", "< 15 s (asserted)", "new engine core"),
    ("kill -9 of a TP worker (engine core restarted)", "Tests/e2e/test_faults.py", None, None, None),
    ("kill -9 of a proxy backend", "Tests/e2e/test_proxy_serve.py::test_killing_a_backend_loses_no_request_that_had_not_started_streaming",
     "0 of 48 (asserted)", "failed over before any byte", "proxy in-flight cost 0 (asserted)"),
    ("kill -9 of a headless DP node", "Tests/e2e/test_data_parallel_multinode.py::test_losing_the_headless_node_and_its_return",
     "0 of those not started (32 streams, asserted)", "streaming ones end with an error (< 30 s, asserted)", "rank rejoins empty"),
    ("kill -9 of a PD producer (server and engine core)", "Tests/e2e/test_pd_disagg.py::test_producer_killed_mid_run_every_answer_arrives_by_recompute",
     "0 (every answer recomputed, asserted)", "< 60 s for all (asserted)", "KV usage 0 (asserted)"),
    ("clients disconnect mid-stream (64 streams)", "Tests/e2e/test_server_load.py::test_64_concurrent_streams_with_early_disconnects",
     "0 (asserted)", "n/a", "KV usage 0 (asserted)"),
    ("a client that never reads", "Tests/e2e/test_slow_client.py",
     "0 for the other clients (asserted)", "n/a", "KV usage 0 (asserted)"),
]


def run_pytest(node, env, timeout):
    start = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", node]
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out, code = r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out, code = (e.stdout or "") + (e.stderr or "") if isinstance(e.stdout, str) else "", -1
    seconds = time.monotonic() - start
    summary = next((l for l in reversed(out.splitlines()) if re.search(r"\d+ (passed|failed|error)", l)), "no summary")
    measured = {}
    for m in re.finditer(r"RELIABILITY (.*)", out):
        for kv in m.group(1).split():
            k, _, v = kv.partition("=")
            measured[k] = v
    return code, seconds, summary.strip("= "), measured, out


def fuzz(target, seconds):
    """Fuzzes one target (scripts/fuzz.sh): (executions, seconds it ran, crash/timeout inputs of this run)."""
    artifacts = ROOT / ".build" / "fuzz-artifacts" / target
    if artifacts.exists():  # only this run's findings count
        for p in artifacts.iterdir():
            p.unlink()
    r = subprocess.run(["scripts/fuzz.sh", target, str(seconds)], cwd=ROOT, capture_output=True, text=True,
                       timeout=seconds + 3600)
    return fuzz_log(target, seconds, r.stdout + r.stderr)


def fuzz_log(target, seconds, fallback=""):
    """What the last fuzzing of `target` left (its log and crash inputs in .build/fuzz-artifacts/TARGET)."""
    artifacts = ROOT / ".build" / "fuzz-artifacts" / target
    log = artifacts / "log.txt"
    text = log.read_text(errors="replace") if log.exists() else fallback
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", text)
    ran = re.search(r"Done \d+ runs in (\d+) second", text)
    crashes = [p.name for p in artifacts.iterdir() if p.name != "log.txt"] if artifacts.exists() else []
    return (int(execs.group(1)) if execs else 0), (int(ran.group(1)) if ran else seconds), crashes


def corpus_summary(target):
    """(inputs in the committed corpus, KB, `regression-*` inputs: crashes found earlier and fixed)."""
    files = [p for p in (ROOT / "Tests" / "FuzzCorpus" / target).iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    return len(files), size / 1024, sorted(p.name for p in files if p.name.startswith("regression-"))


def previous_soak():
    """The soak section of the report on disk (for --skip-soak), or None."""
    path = pathlib.Path(__file__).parent / "report.md"
    if not path.exists():
        return None
    lines = path.read_text().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("Soak:")), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("Fuzzing:", "Generated by"))), len(lines))
    return [l for l in lines[start:end] if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--soak-streams", type=int, default=1000)
    ap.add_argument("--fuzz-seconds", type=int, default=120)
    ap.add_argument("--skip-fuzz", action="store_true")
    ap.add_argument("--fuzz-logs", action="store_true",
                    help="fill the fuzz table from the last `scripts/fuzz.sh all SECONDS` run's logs instead of fuzzing again")
    ap.add_argument("--skip-soak", action="store_true", help="carry the soak section of the report on disk over")
    ap.add_argument("--only", help="run only the faults whose name contains this text")
    args = ap.parse_args()
    env = dict(os.environ)
    env.setdefault("PAGODA_CONFORMANCE", str(ROOT.parent / "shared" / "conformance"))
    lines = ["| fault injected | test result | requests lost | max time to a clear error | leaked KV blocks | run time |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, node, lost, clear, leaked in FAULTS:
        if args.only and args.only not in name:
            continue
        code, seconds, summary, measured, out = run_pytest(node, env, timeout=1800)
        if code != 0:
            print(out[-4000:], file=sys.stderr)
        lost = measured.get("lost", lost)
        clear = f"{measured['max_error_s']} s (measured)" if "max_error_s" in measured else clear
        leaked = measured.get("leaked_blocks", leaked)
        lines.append(f"| {name} | {summary} | {lost} | {clear} | {leaked} | {seconds:.0f} s |")
        print(lines[-1], flush=True)

    carried = previous_soak() if args.skip_soak else None
    if carried:
        soak = ["", carried[0], "", *carried[1:], "", "(Soak section carried over from the previous report: this run used --skip-soak.)"]
    else:
        soak = ["", f"Soak: {args.soak_streams} concurrent streams per burst (3 bursts against `pagoda serve`, 2 through "
                "`pagoda proxy`), Tests/e2e/test_soak.py:", ""]
        env_soak = dict(env, PAGODA_SOAK_STREAMS=str(args.soak_streams))
        code, seconds, summary, measured, out = run_pytest("Tests/e2e/test_soak.py", env_soak, timeout=3600)
        if code != 0:
            print(out[-4000:], file=sys.stderr)
        rss = re.search(r"SOAK rss_kib=(\S+)", out)
        soak.append(f"- {summary} in {seconds:.0f} s; API server resident memory after each burst (KiB): "
                    f"{rss.group(1) if rss else 'see the test output'}; KV pool whole and proxy in-flight 0 (asserted).")
    print("\n".join(soak), flush=True)

    fuzz_lines = []
    if not args.skip_fuzz:
        how = f"`scripts/fuzz.sh all {args.fuzz_seconds}` run before this report (--fuzz-logs)" if args.fuzz_logs else "scripts/fuzz.sh"
        fuzz_lines = ["", f"Fuzzing: each target {args.fuzz_seconds} s from its committed corpus ({how}, "
                      "libFuzzer + AddressSanitizer, debug build). Crashes fixed: the `regression-*` inputs of the "
                      "committed corpus, each once a crash or hang, replayed in CI (PagodaFuzzingTests).", "",
                      "| target | seconds | executions | crashes/timeouts found in this run | crashes found and fixed (regression inputs) | committed corpus |",
                      "| --- | --- | --- | --- | --- | --- |"]
        targets = sorted(p.name for p in (ROOT / "Tests" / "FuzzCorpus").iterdir() if p.is_dir())
        total_execs = 0
        for t in targets:
            execs, ran, crashes = fuzz_log(t, args.fuzz_seconds) if args.fuzz_logs else fuzz(t, args.fuzz_seconds)
            total_execs += execs
            count, kb, fixed = corpus_summary(t)
            fuzz_lines.append(f"| {t} | {ran} | {execs} | {', '.join(crashes) or 0} | {len(fixed)}"
                              f"{' (' + ', '.join(fixed) + ')' if fixed else ''} | {count} inputs, {kb:.0f} KB |")
            print(fuzz_lines[-1], flush=True)
        fuzz_lines.append(f"| all {len(targets)} targets | | {total_execs} | | | |")

    command = " ".join(["Benchmarks/reliability/run.sh", *sys.argv[1:]])
    footer = ["", f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (a shared, "
              "loaded machine: times are noisy)."]
    report = "\n".join(lines + soak + fuzz_lines + footer) + "\n"
    (pathlib.Path(__file__).parent / "report.md").write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
