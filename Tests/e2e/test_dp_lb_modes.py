"""vLLM's data-parallel load-balancing modes besides internal: `--data-parallel-hybrid-lb` (each server balances
its node's ranks, `--data-parallel-start-rank` .. + `--data-parallel-size-local`) and
`--data-parallel-external-lb` / `--data-parallel-rank` (one rank per server), each behind `pagoda proxy`; /load,
/metrics and pinned ranks use global ranks; and the flag combinations vLLM rejects."""
import json
import subprocess

import openai
import pytest

from conftest import CONFORMANCE, free_port
from router_harness import metrics as proxy_metrics
from router_harness import per_backend, start_proxy
from serve_process import ServeProcess

MODEL = str(CONFORMANCE / "models" / "tiny-llama3")
COMMON = ["--max-model-len", "512", "--served-model-name", "m", "--disable-log-requests", "--dtype", "float32",
          "--threads", "1"]


def start_all(pagoda, arg_lists):
    servers = [ServeProcess(pagoda, MODEL, free_port(), [*COMMON, *args]) for args in arg_lists]
    try:
        for s in servers:
            s.wait_healthy(timeout=240)
    except Exception:
        for s in servers:
            s.stop()
        raise
    return servers


def engine_metric(s, name, engine):
    total = 0.0
    for line in s.get("/metrics")[2].decode().splitlines():
        if line.startswith(name + "{") and f'engine="{engine}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def complete(port, prompt, rank=None):
    extra = {"data_parallel_rank": rank} if rank is not None else None
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=120, max_retries=0)
    return c.completions.create(model="m", prompt=prompt, max_tokens=6, temperature=0, extra_body=extra).choices[0].text


def test_two_hybrid_servers_behind_the_proxy(pagoda, tmp_path):
    base = ["--data-parallel-size", "4", "--data-parallel-size-local", "2", "--data-parallel-hybrid-lb"]
    a, b = start_all(pagoda, [[*base, "--data-parallel-start-rank", "0"], [*base, "--data-parallel-start-rank", "2"]])
    proxy = None
    try:
        # Each server runs and reports its own node's ranks, by global rank.
        assert [e["rank"] for e in json.loads(a.get("/load")[2])["engines"]] == [0, 1]
        assert [e["rank"] for e in json.loads(b.get("/load")[2])["engines"]] == [2, 3]
        assert "data parallel ranks 2..3 of 4 behind this server (hybrid load balancing" in b.log_text()
        assert len(b.engine_core_pids()) == 2
        # A pinned rank is global: rank 3 lives on b only.
        assert complete(b.port, "pinned", rank=3) == complete(a.port, "pinned", rank=1)
        assert engine_metric(b, "vllm:request_success_total", 3) >= 1
        status, _, body = a.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 2, "data_parallel_rank": 3})
        assert status == 400 and b"data_parallel_rank 3" in body
        # The outside balancer: pagoda proxy over the two servers; answers equal a server's own.
        proxy, pport = start_proxy(pagoda, tmp_path, [a.port, b.port])
        prompts = [f"hybrid {i} once upon a time" for i in range(12)]
        assert [complete(pport, p) for p in prompts] == [complete(a.port, p) for p in prompts]
        served = per_backend(proxy_metrics(pport), "pagoda_proxy_backend_requests_routed_total", [a.port, b.port])
        assert all(n > 0 for n in served), served
        served_ranks = [engine_metric(s, "vllm:request_success_total", r) for s, r in ((a, 0), (a, 1), (b, 2), (b, 3))]
        assert sum(served_ranks) >= 2 * len(prompts) and served_ranks[2] + served_ranks[3] > 1, served_ranks
    finally:
        if proxy:
            proxy.stop()
        a.stop()
        b.stop()


def test_external_ranks_behind_the_proxy(pagoda, tmp_path):
    r0, r1 = start_all(pagoda, [["--data-parallel-size", "2", "--data-parallel-external-lb", "--data-parallel-rank", str(r)]
                                for r in (0, 1)])
    proxy = None
    try:
        load = json.loads(r1.get("/load")[2])
        assert (load["data_parallel_rank"], load["data_parallel_size"]) == (1, 2)
        assert "data parallel rank 1 of 2 (external load balancing" in r1.log_text()
        proxy, pport = start_proxy(pagoda, tmp_path, [r0.port, r1.port])
        prompts = [f"external {i} the quick brown fox" for i in range(10)]
        assert [complete(pport, p) for p in prompts] == [complete(r1.port, p) for p in prompts]
        served = per_backend(proxy_metrics(pport), "pagoda_proxy_backend_requests_routed_total", [r0.port, r1.port])
        assert all(n > 0 for n in served), served
        assert engine_metric(r1, "vllm:request_success_total", 1) >= 10
    finally:
        if proxy:
            proxy.stop()
        r0.stop()
        r1.stop()


@pytest.mark.parametrize("args, needle", [
    (["--api-server-count", "0"], "invalid --api-server-count 0"),
    (["--api-server-count", "2", "--port", "0"], "needs a fixed --port"),
    (["--data-parallel-size", "2", "--data-parallel-hybrid-lb", "--data-parallel-external-lb", "--data-parallel-rank", "0",
      "--data-parallel-size-local", "1"], "more than one data-parallel load balancing mode"),
    (["--data-parallel-size", "2", "--data-parallel-rank", "1", "--data-parallel-start-rank", "1"],
     "more than one data-parallel load balancing mode"),
    (["--data-parallel-size", "2", "--data-parallel-external-lb"], "needs --data-parallel-rank"),
    (["--data-parallel-size", "2", "--data-parallel-rank", "0", "--data-parallel-size-local", "2"], "must be 1 when --data-parallel-rank is set"),
    (["--data-parallel-size", "2", "--data-parallel-hybrid-lb"], "needs --data-parallel-size-local"),
    (["--data-parallel-size", "2", "--data-parallel-start-rank", "1"], "needs --data-parallel-size-local"),
    (["--data-parallel-size", "2", "--data-parallel-size-local", "3"], "must be at most --data-parallel-size 2"),
    (["--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-start-rank", "2"],
     "invalid --data-parallel-start-rank 2"),
    (["--data-parallel-size", "4", "--data-parallel-size-local", "2", "--data-parallel-start-rank", "3"], "exceed --data-parallel-size 4"),
    (["--data-parallel-size", "4", "--data-parallel-size-local", "0", "--data-parallel-hybrid-lb"], "must be at least 1 with --data-parallel-hybrid-lb"),
    (["--data-parallel-size", "4", "--data-parallel-size-local", "2", "--api-server-count", "2"], "with ranks on headless nodes"),
    (["--data-parallel-size", "4", "--data-parallel-size-local", "2", "--data-parallel-start-rank", "2", "--headless",
      "--data-parallel-hybrid-lb"], "--data-parallel-hybrid-lb cannot be used with --headless"),
])
def test_rejected_flag_combinations(pagoda, args, needle):
    r = subprocess.run([pagoda, "serve", MODEL, "--port", str(free_port()), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and needle in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, r.stderr
