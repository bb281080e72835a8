"""`pagoda serve --enable-expert-parallel` on the conformance MoE models (tiny-qwen3-moe, tiny-mixtral): experts
spread over DP × TP ranks, tokens moved by all-to-all. Greedy outputs equal one engine's without EP (alone and
under concurrent load) for EP over DP=2, TP=2 and DP=2 × TP=2; a DP rank with no requests still steps (dummy
batches in /metrics) and the wave ends once all ranks are idle; per-expert load is in /metrics and the log;
a rank killed mid-wave ends every in-flight request with an error naming it, and nothing hangs."""
import concurrent.futures
import os
import re
import signal
import subprocess
import time

import openai
import pytest

from conftest import CONFORMANCE, free_port
from test_data_parallel import load, metric
from test_data_parallel import start as start_server

MODELS = {name: str(CONFORMANCE / "models" / name) for name in ("tiny-qwen3-moe", "tiny-mixtral")}
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):",
           "The quick brown fox", "In the beginning"]


def start(pagoda, model, *args):
    return start_server(pagoda, "--dtype", "float32", "--threads", "1", *args, model=model)


def client(s, timeout=60):
    return openai.OpenAI(base_url=s.base_url + "/v1", api_key="none", timeout=timeout, max_retries=0)


def greedy(s, prompts, max_tokens=10, concurrency=1):
    c = client(s)

    def one(p):
        return c.completions.create(model="m", prompt=p, max_tokens=max_tokens, temperature=0).choices[0].text

    if concurrency == 1:
        return [one(p) for p in prompts]
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, prompts, timeout=240))


@pytest.fixture(scope="module")
def references(pagoda):
    out = {}
    for name, path in MODELS.items():
        s = start(pagoda, path)
        try:
            out[name] = greedy(s, PROMPTS)
        finally:
            s.stop()
    return out


LAYOUTS = {"dp2": ["--data-parallel-size", "2"], "tp2": ["-tp", "2"], "dp2xtp2": ["--data-parallel-size", "2", "-tp", "2"],
           # the expert-parallel group and the wave check over TCP (loopback) instead of shared memory
           "dp2-tcp": ["--data-parallel-size", "2", "--distributed-transport", "tcp"]}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", MODELS)
def test_greedy_tokens_equal_the_non_ep_engine(pagoda, references, name, layout):
    s = start(pagoda, MODELS[name], "--enable-expert-parallel", "--expert-load-report-interval", "4", *LAYOUTS[layout])
    try:
        assert greedy(s, PROMPTS) == references[name]
        # Under concurrent load: each prompt twice at once, spread over the ranks, batched with the others.
        assert greedy(s, PROMPTS + PROMPTS, concurrency=8) == references[name] + references[name]
        # The MoE layers did run expert-parallel: every engine's EP ranks received tokens for their experts.
        engines = [0, 1] if "--data-parallel-size" in LAYOUTS[layout] else [0]
        assert all(metric(s, "pagoda:ep_expert_tokens_total", engine=e) > 0 for e in engines)
        if layout != "tp2":  # DP ranks
            assert "expert parallelism over 2 data-parallel ranks" in s.log_text()
            assert all(metric(s, "vllm:request_success_total", engine=e) > 0 for e in engines)
    finally:
        s.stop()


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while not (ok := predicate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return ok


def test_idle_rank_runs_dummy_batches_and_the_wave_ends(pagoda):
    s = start(pagoda, MODELS["tiny-qwen3-moe"], "--enable-expert-parallel", "--data-parallel-size", "2",
              "--expert-load-report-interval", "4")
    try:
        c = client(s)
        for i in range(3):  # every request pinned to rank 0: rank 1 has none
            r = c.completions.create(model="m", prompt=PROMPTS[i], max_tokens=12, temperature=0,
                                     extra_body={"data_parallel_rank": 0})
            assert r.choices[0].finish_reason == "length"
        # Both ranks stepped through the same waves; rank 1 only with dummy batches, which served rank 0's tokens.
        assert wait_for(lambda: metric(s, "pagoda:dp_in_wave", engine="0") == 0 and metric(s, "pagoda:dp_in_wave", engine="1") == 0, 10)
        assert metric(s, "vllm:request_success_total", engine="1") == 0
        dummy1, steps1 = metric(s, "pagoda:dp_dummy_steps_total", engine="1"), metric(s, "pagoda:dp_wave_steps_total", engine="1")
        assert dummy1 >= 3 * 12 and dummy1 == steps1, (dummy1, steps1)
        assert metric(s, "pagoda:dp_wave_steps_total", engine="0") == steps1
        assert metric(s, "pagoda:dp_waves_total", engine="0") >= 1
        assert metric(s, "pagoda:dp_waves_total", engine="1") == metric(s, "pagoda:dp_waves_total", engine="0")
        # The wave is over: no rank steps while all are idle.
        time.sleep(1)
        assert metric(s, "pagoda:dp_dummy_steps_total", engine="1") == dummy1
        # Per-expert load: rank 1's experts received rank 0's tokens; all-to-all time is counted.
        assert metric(s, "pagoda:ep_expert_tokens_total", engine="1") > 0
        assert metric(s, "pagoda:ep_expert_tokens_total", engine="0") > 0
        assert metric(s, "pagoda:ep_all_to_all_seconds_total", engine="0") > 0
        assert re.search(r"expert load at EP step \d+: balancedness [0-9.]+", s.log_text())
    finally:
        s.stop()


def test_a_rank_killed_mid_wave_fails_every_request_naming_it(pagoda):
    s = start(pagoda, MODELS["tiny-qwen3-moe"], "--enable-expert-parallel", "--data-parallel-size", "2",
              "--distributed-timeout-seconds", "10")
    try:
        c = client(s, timeout=90)
        victim = load(s)["engines"][1]["pid"]

        def one(i):
            try:
                c.completions.create(model="m", prompt=f"long {i}", max_tokens=480, temperature=0,
                                     extra_body={"data_parallel_rank": i % 2})
                return "completed"
            except openai.APIError as e:
                return f"error: {e}"

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, i) for i in range(6)]
            assert wait_for(lambda: load(s)["engines"][1]["num_requests_running"] > 0
                            and load(s)["engines"][0]["num_requests_running"] > 0, 30)
            time.sleep(0.3)
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            results = [f.result(timeout=60) for f in futures]
            elapsed = time.monotonic() - killed
        # Every request ends with an error, within the communicator timeout (plus slack), none hangs.
        assert all(r.startswith("error") for r in results), results
        assert elapsed < 30, elapsed
        # Rank 0's requests name the dead rank (EP rank 1 is DP rank 1 here).
        assert any("rank 1" in r for r in results), results
        assert s.proc.poll() is None
        # A new request fails promptly (the group is broken), it does not hang.
        started = time.monotonic()
        with pytest.raises(openai.APIError) as e:
            c.completions.create(model="m", prompt="after", max_tokens=4, temperature=0)
        assert time.monotonic() - started < 20 and "rank 1" in str(e.value)
        assert "engine core rank 1 died" in s.log_text()
    finally:
        s.stop()


@pytest.mark.parametrize("model,args,message", [
    ("tiny-qwen3", [], "expert parallelism needs a mixture-of-experts model"),
    ("tiny-qwen3-moe", ["-pp", "2"], "invalid --enable-expert-parallel: runs with --pipeline-parallel-size 1"),
    ("tiny-qwen3-moe", ["--data-parallel-size", "2", "--api-server-count", "2"], "behind one API server"),
], ids=["dense-model", "pipeline", "api-servers"])
def test_unsupported_layouts_are_one_line_errors(pagoda, model, args, message):
    path = str(CONFORMANCE / "models" / model)
    r = subprocess.run([pagoda, "serve", path, "--host", "127.0.0.1", "--port", str(free_port()), "--enable-expert-parallel",
                        *args], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and message in r.stderr + r.stdout, r.stderr + r.stdout
