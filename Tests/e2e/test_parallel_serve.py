"""`pagoda serve` with pipeline and tensor parallelism end to end: concurrent requests to a P=2 server
(two micro-batches in flight) and a T=2 server give the tokens of a one-process server; a client that
drops a stream mid-generation does not disturb the others; stopping the server leaves no worker."""
import concurrent.futures
import json
import os
import socket
import time

import pytest

from conftest import free_port
from serve_process import ServeProcess

# float32 compute: tensor parallelism sums partial products in another order, which bf16 activations
# (--dtype auto on a bf16 model) could turn into a different greedy token on a near-tie.
MODEL_ARGS = ["--max-model-len", "256", "--seed", "0", "--threads", "1", "--kv-cache-memory-bytes", "20000000",
              "--dtype", "float32"]
PROMPTS = [[1, 2, 3, 4 + i, 9, 10 + 3 * i] for i in range(6)]


def worker_pids():
    """Pids of every `pagoda worker` process on this host."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if len(cmd) > 1 and cmd[0].endswith(b"pagoda") and cmd[1] == b"worker" and b"--engine-socket" in cmd:
            pids.append(int(entry))
    return set(pids)


def complete(server, prompt, max_tokens=12):
    status, _, body = server.post("/v1/completions", {
        "model": server.model_name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "ignore_eos": True, "logprobs": 1}, timeout=120)
    assert status == 200, body
    choice = json.loads(body)["choices"][0]
    return choice["text"], choice["logprobs"]["tokens"]


def run_all(server):
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        return list(pool.map(lambda p: complete(server, p), PROMPTS))


def start(pagoda, small_model, extra):
    s = ServeProcess(pagoda, small_model, free_port(), MODEL_ARGS + extra)
    s.model_name = None
    try:
        s.wait_healthy()
        status, _, body = s.get("/v1/models")
        s.model_name = json.loads(body)["data"][0]["id"]
    except Exception:
        s.stop()
        raise
    return s


@pytest.fixture(scope="module")
def reference(pagoda, small_model):
    s = start(pagoda, small_model, [])
    try:
        yield run_all(s)
    finally:
        s.stop()


@pytest.mark.parametrize("parallel", [["--pipeline-parallel-size", "2"], ["--tensor-parallel-size", "2"]],
                         ids=["pp2", "tp2"])
def test_concurrent_requests_match_one_process(pagoda, small_model, reference, parallel):
    before = worker_pids()
    s = start(pagoda, small_model, parallel)
    try:
        mine = worker_pids() - before
        assert len(mine) == 2, f"expected 2 worker processes, found {mine}"
        assert run_all(s) == reference

        # A streaming client that goes away after two chunks: its request is aborted while the other
        # micro-batch is in flight; the concurrent requests still get the reference tokens.
        body = json.dumps({"model": s.model_name, "prompt": PROMPTS[0], "max_tokens": 200, "temperature": 0,
                           "ignore_eos": True, "stream": True}).encode()
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        got = b""
        while got.count(b"data:") < 2:
            chunk = sock.recv(65536)
            assert chunk, "stream ended early"
            got += chunk
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            later = pool.map(lambda p: complete(s, p), PROMPTS[1:4])
            sock.close()
            assert list(later) == reference[1:4]
        assert s.proc.poll() is None

        # logit_bias travels with the sampling parameters to the rank that samples.
        status, _, body = s.post("/v1/completions", {
            "model": s.model_name, "prompt": PROMPTS[0], "max_tokens": 3, "temperature": 0, "ignore_eos": True,
            "logit_bias": {"42": 100}, "logprobs": 0}, timeout=120)
        assert status == 200, body
        status, _, forced = s.post("/detokenize", {"model": s.model_name, "tokens": [42]})
        assert json.loads(body)["choices"][0]["logprobs"]["tokens"] == [json.loads(forced)["prompt"]] * 3
    finally:
        s.stop()
    deadline = time.monotonic() + 10
    while worker_pids() & mine and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (worker_pids() & mine), "worker processes outlived the server"
