"""A soak: bursts of concurrent streaming requests against `pagoda serve` (small model) and through `pagoda proxy`;
every stream completes with all its tokens, the server's resident memory stays flat after warm-up, the KV pool is
whole afterwards and the proxy's in-flight count returns to 0.

Scale: PAGODA_SOAK_STREAMS concurrent streams per burst (default 200, what CI runs; Benchmarks/reliability/run.sh
runs 1,000). Bounded in count (3 bursts) and in time (every stream has a deadline)."""
import asyncio
import os
import re
import time
import urllib.request

import openai
import pytest

from router_harness import Proc, free_port, metrics, per_backend, start_proxy, wait_http

STREAMS = int(os.environ.get("PAGODA_SOAK_STREAMS", "200"))
TOKENS = 12
BURSTS = 3


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def server_metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(vllm:[a-z_]+)(\{[^}]*\})? (\S+)$', line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


async def burst(port, model, n):
    """n concurrent streams; returns the list of failures (empty when every stream completed in full)."""
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=300)

    async def one(i):
        try:
            stream = await client.completions.create(model=model, prompt=f"request {i}: the", max_tokens=TOKENS,
                                                     stream=True, temperature=0, extra_body={"ignore_eos": True})
            text, finish = 0, None
            async for chunk in stream:
                if chunk.choices:
                    text += 1 if chunk.choices[0].text else 0
                    finish = chunk.choices[0].finish_reason or finish
            if finish != "length":
                return f"stream {i} ended with finish_reason {finish!r} after {text} chunks"
            return None
        except Exception as e:  # noqa: BLE001 - every failure is reported
            return f"stream {i}: {type(e).__name__}: {e}"

    try:
        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout=600)
    finally:
        await client.close()
    return [r for r in results if r]


@pytest.fixture(scope="module")
def server(pagoda, small_model, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("soak")
    port = free_port()
    proc = Proc([pagoda, "serve", small_model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "m",
                 "--max-model-len", "256", "--max-num-seqs", "256", "--disable-log-requests"], log_dir, f"serve-{port}")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
        yield {"proc": proc, "port": port, "log_dir": log_dir}
    finally:
        proc.stop()


def kv_settled(port, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        m = server_metrics(port)
        if (m.get("vllm:kv_cache_usage_perc", 1) == 0 and m.get("vllm:num_requests_running", 1) == 0
                and m.get("vllm:num_requests_waiting", 1) == 0) or time.monotonic() > deadline:
            return m
        time.sleep(0.1)


def test_soak_against_the_server(server):
    port, pid = server["port"], server["proc"].pid
    assert asyncio.run(burst(port, "m", 50)) == [], "warm-up"
    rss = []
    for _ in range(BURSTS):
        failures = asyncio.run(burst(port, "m", STREAMS))
        assert failures == [], failures[:5]
        m = kv_settled(port)
        assert m["vllm:kv_cache_usage_perc"] == 0 and m["vllm:num_requests_running"] == 0, m
        rss.append(rss_kib(pid))
    # Flat after warm-up: the last burst grows the API server by less than 10 % (and 32 MiB) over the first.
    print(f"SOAK rss_kib={','.join(map(str, rss))}")  # read by Benchmarks/reliability/report.py
    growth = rss[-1] - rss[0]
    assert growth < max(32 << 10, rss[0] // 10), f"resident memory (KiB) after each burst: {rss}"
    assert server["proc"].alive()


def test_soak_through_the_proxy(pagoda, server):
    proxy, pport = start_proxy(pagoda, server["log_dir"], [server["port"]])
    try:
        for _ in range(2):
            failures = asyncio.run(burst(pport, "m", STREAMS))
            assert failures == [], failures[:5]
        deadline = time.monotonic() + 20
        while sum(per_backend(metrics(pport), "pagoda_proxy_backend_in_flight_requests", [server["port"]])) != 0:
            assert time.monotonic() < deadline, "the proxy's in-flight count did not return to 0"
            time.sleep(0.1)
        assert sum(per_backend(metrics(pport), "pagoda_proxy_backend_in_flight_cost", [server["port"]])) == 0
        assert kv_settled(server["port"])["vllm:kv_cache_usage_perc"] == 0
        assert proxy.alive()
    finally:
        proxy.stop()
