"""Output throughput of a conformance MoE model (tiny-qwen3-moe) under expert parallelism over DP=2, 32 requests of
64 tokens at concurrency 16, 3 runs after a warm-up: every rank on one host (shared-memory groups) against a head
and a `--headless` node (TCP groups over loopback). Usage (PAGODA_CONFORMANCE set, as for the e2e tests):
    python3 Benchmarks/expert-parallel/across_nodes.py .build/debug/pagoda"""
import concurrent.futures
import os
import pathlib
import secrets
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "Tests" / "e2e"))
os.environ["PAGODA_INTERNAL_SECRET"] = "bench-" + secrets.token_hex(16)
from conftest import free_port
from serve_process import ServeProcess, openai_client
from test_expert_parallel_multinode import HeadlessNode, free_port_run, MODEL, COMMON
pagoda = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/pagoda")

def run(s, n=32, conc=16, out=64):
    c = openai_client(s, 120)
    def one(i):
        r = c.completions.create(model="m", prompt=f"story {i}:", max_tokens=out, temperature=0, extra_body={"ignore_eos": True})
        return r.usage.completion_tokens
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(conc) as p:
        toks = sum(p.map(one, range(n)))
    return toks / (time.monotonic() - t)

def measure(kind):
    base = [*COMMON, "--served-model-name", "m", "--disable-log-requests", "--enable-expert-parallel", "--data-parallel-size", "2"]
    node = None
    if kind == "one-host":
        s = ServeProcess(pagoda, MODEL, free_port(), base)
    else:
        port = free_port_run("127.0.0.1")
        rpc = ["--data-parallel-size-local", "1", "--data-parallel-address", "127.0.0.1", "--data-parallel-rpc-port", str(port)]
        s = ServeProcess(pagoda, MODEL, free_port(), base + rpc)
        node = HeadlessNode(pagoda, [], ["--enable-expert-parallel", "--data-parallel-size", "2", *rpc, "--data-parallel-start-rank", "1"])
    try:
        s.wait_healthy(120)
        run(s, n=8)  # warm-up
        return [run(s) for _ in range(3)]
    finally:
        s.stop()
        if node: node.stop()

for kind in ("one-host", "head+headless"):
    r = measure(kind)
    print(kind, "output tok/s runs", [round(x, 1) for x in r], "median", round(statistics.median(r), 1))
