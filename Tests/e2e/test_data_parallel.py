"""`pagoda serve --data-parallel-size N`: N engine cores behind one endpoint (internal load balancing).
Greedy outputs equal one engine's, both engines serve under load, prefix-aware routing reuses more of
the prefix cache than the load score alone, and losing an engine core leaves the server serving."""
import concurrent.futures
import json
import os
import re
import signal
import time

import openai
import pytest

from conftest import CONFORMANCE, free_port
from serve_process import ServeProcess

MODEL = str(CONFORMANCE / "models" / "tiny-llama3")
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):",
           "The quick brown fox", "In the beginning"]


def start(pagoda, *args, model=MODEL):
    s = ServeProcess(pagoda, model, free_port(), ["--max-model-len", "512", "--served-model-name", "m",
                                                   "--disable-log-requests", *args])
    try:
        s.wait_healthy(timeout=180)
    except Exception:
        s.stop()
        raise
    return s


def client(s):
    return openai.OpenAI(base_url=s.base_url + "/v1", api_key="none", timeout=60, max_retries=0)


def greedy(s, prompts=PROMPTS, max_tokens=12):
    c = client(s)
    return [c.completions.create(model="m", prompt=p, max_tokens=max_tokens, temperature=0).choices[0].text for p in prompts]


def load(s):
    return json.loads(s.get("/load")[2])


def metric(s, name, **labels):
    text = s.get("/metrics")[2].decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_metric(s, expected, name, **labels):
    """The metric once it reaches `expected` (a request's metrics are recorded just after its response), or its
    value after 5 s."""
    deadline = time.monotonic() + 5
    while (value := metric(s, name, **labels)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def reference(pagoda):
    s = start(pagoda, "--dtype", "float32", "--threads", "1")
    try:
        return greedy(s)
    finally:
        s.stop()


@pytest.mark.parametrize("args", [["--data-parallel-size", "2"], ["--data-parallel-size", "2", "-tp", "2"]],
                         ids=["dp2", "dp2xtp2"])
def test_greedy_outputs_equal_one_engine(pagoda, reference, args):
    s = start(pagoda, "--dtype", "float32", "--threads", "1", *args)
    try:
        # Each prompt twice, so that both ranks serve some of them.
        assert greedy(s, PROMPTS + PROMPTS) == reference + reference
        engines = load(s)["engines"]
        assert [e["rank"] for e in engines] == [0, 1] and all(e["up"] and e["num_blocks"] > 0 for e in engines)
        log = s.log_text()
        assert re.search(r"engine core rank 0 ready .*\d+ KV blocks", log) and re.search(r"engine core rank 1 ready .*\d+ KV blocks", log)
    finally:
        s.stop()


def test_both_engines_serve_a_bounded_load(pagoda):
    s = start(pagoda, "--data-parallel-size", "2")
    try:
        c = client(s)

        def one(i):
            return c.completions.create(model="m", prompt=f"request {i}: " + PROMPTS[i % len(PROMPTS)], max_tokens=8,
                                        temperature=0.8, seed=i).choices[0].finish_reason

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            reasons = list(pool.map(one, range(64), timeout=240))
        assert reasons == ["length"] * 64
        wait_metric(s, 64, "vllm:request_success_total")
        served = [metric(s, "vllm:request_success_total", engine=r) for r in (0, 1)]
        assert sum(served) == 64 and min(served) > 0, served
        assert all(metric(s, "vllm:generation_tokens_total", engine=r) > 0 for r in (0, 1))
        # vLLM's data_parallel_rank pins a request to a rank; a rank not served here is a 400 naming the field.
        before = metric(s, "vllm:request_success_total", engine=1)
        for i in range(4):
            c.completions.create(model="m", prompt=f"pinned {i}", max_tokens=2, extra_body={"data_parallel_rank": 1})
        assert wait_metric(s, before + 4, "vllm:request_success_total", engine=1) == before + 4
        with pytest.raises(openai.BadRequestError) as e:
            c.completions.create(model="m", prompt="x", max_tokens=2, extra_body={"data_parallel_rank": 5})
        assert e.value.body["param"] == "data_parallel_rank"
        # vLLM's X-data-parallel-rank header does the same (chat too).
        before = metric(s, "vllm:request_success_total", engine=0)
        for i in range(3):
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": f"hi {i}"}], max_tokens=2,
                                      extra_headers={"X-data-parallel-rank": "0"})
        assert wait_metric(s, before + 3, "vllm:request_success_total", engine=0) == before + 3
        status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 2},
                                 headers={"X-data-parallel-rank": "first"})
        assert status == 400 and b"X-data-parallel-rank" in body
    finally:
        s.stop()


def prefix_hits(pagoda, routing):
    """Prefix-cache hit tokens over both engines for 3 long shared prefixes × 6 requests each (an odd number of
    prefixes, so that taking turns does not by chance send each prefix to the same engine)."""
    s = start(pagoda, "--data-parallel-size", "2", "--data-parallel-routing", routing)
    try:
        prefixes = [[(p * 97 + k * 13) % 1000 + 10 for k in range(160)] for p in range(3)]
        for round_ in range(6):
            for p, prefix in enumerate(prefixes):
                body = {"model": "m", "prompt": prefix + [500 + round_, 600 + p], "max_tokens": 2, "temperature": 0}
                status, _, answer = s.post("/v1/completions", body, timeout=60)
                assert status == 200, answer
        engines = load(s)["engines"]
        return sum(e["prefix_cache_hits"] for e in engines), sum(e["prefix_cache_queries"] for e in engines)
    finally:
        s.stop()


def test_prefix_aware_routing_reuses_more_of_the_cache(pagoda):
    base_hits, base_queries = prefix_hits(pagoda, "load")
    prefix_aware_hits, queries = prefix_hits(pagoda, "prefix")
    print(f"prefix-cache hit rate: load-only {base_hits}/{base_queries}, prefix-aware {prefix_aware_hits}/{queries}")
    assert queries == base_queries
    # Load-only alternates equal engines, so each prefix is computed on both; prefix-aware computes it once.
    assert prefix_aware_hits > base_hits


def test_losing_an_engine_core_leaves_the_server_serving(pagoda):
    s = start(pagoda, "--data-parallel-size", "2", "--no-restart-engines")
    try:
        c = client(s)
        victim = load(s)["engines"][1]["pid"]

        def stream(i):
            try:
                out = c.completions.create(model="m", prompt=f"long {i}", max_tokens=480, temperature=0, stream=True)
                return "ok" if [ch for ch in out if ch.choices and ch.choices[0].finish_reason] else "no finish"
            except openai.APIError as e:
                return f"error: {e}"

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(stream, i) for i in range(8)]
            deadline = time.monotonic() + 30
            while load(s)["engines"][1]["num_requests_running"] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(victim, signal.SIGKILL)
            # Nothing hangs: every stream ends (completed, or an error for those streaming on the lost rank).
            results = [f.result(timeout=120) for f in futures]
        assert all(r == "ok" or r.startswith("error") for r in results), results
        # The loss is seen within a bounded time (the engine's socket closes with it).
        deadline = time.monotonic() + 10
        while (status_body := s.get("/health"))[2] == b"" and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body = status_body
        assert status == 200 and json.loads(body) == {"status": "degraded", "down_ranks": [1]}
        assert metric(s, "pagoda:engine_up", engine="1") == 0 and metric(s, "pagoda:engine_up", engine="0") == 1
        # New requests all go to the live rank.
        for i in range(6):
            r = c.completions.create(model="m", prompt=f"after {i}", max_tokens=4, temperature=0)
            assert r.choices[0].finish_reason == "length"
        assert "engine core rank 1 died" in s.log_text()
        assert s.proc.poll() is None
    finally:
        s.stop()


def test_a_dead_engine_core_is_restarted_and_rejoins(pagoda):
    s = start(pagoda, "--data-parallel-size", "2")
    try:
        old = load(s)["engines"][1]["pid"]
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            e = load(s)["engines"][1]
            if e["up"] and e["pid"] != old:
                break
            time.sleep(0.1)
        assert e["up"] and e["pid"] != old, load(s)
        assert "engine core rank 1 restarted" in s.log_text()
        status, _, body = s.get("/health")
        assert status == 200 and body == b""
        # Both ranks take requests again.
        before = metric(s, "vllm:request_success_total", engine=1)
        c = client(s)
        for i in range(8):
            c.completions.create(model="m", prompt=f"again {i}", max_tokens=2, temperature=0)
        assert metric(s, "vllm:request_success_total", engine=1) > before
        assert metric(s, "pagoda:engine_up", engine="1") == 1
    finally:
        s.stop()


@pytest.mark.parametrize("args, needle", [
    (["--data-parallel-size", "0"], "data-parallel-size"),
    (["--data-parallel-size", "2", "--data-parallel-rank", "2"], "data-parallel-rank"),
    (["--data-parallel-size", "2", "--data-parallel-routing", "random"], "data-parallel-routing"),
])
def test_bad_data_parallel_flags(pagoda, args, needle):
    import subprocess
    r = subprocess.run([pagoda, "serve", MODEL, "--port", str(free_port()), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and needle in r.stderr
