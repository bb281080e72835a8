"""A bounded load test: 64 concurrent streaming requests against one `pagoda serve`, a quarter of
them disconnected early. Every other request completes correctly, and afterwards the server
reports no running request and an empty KV cache (the aborted requests gave their blocks back)."""
import json
import socket
import threading
import time

import openai
import pytest

from conftest import free_port
from serve_process import ServeProcess

CONCURRENCY = 64
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def server(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(),
                     ["--served-model-name", "m", "--max-model-len", "4200", "--max-num-seqs", "64", "--disable-log-requests"])
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def disconnect_mid_stream(server, prompt):
    """Opens a raw streaming request, reads the first event, then drops the connection."""
    body = json.dumps({"model": "m", "prompt": prompt, "max_tokens": 4000, "stream": True, "ignore_eos": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        got = b""
        while b"data: " not in got:
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
        assert b"200 OK" in got
    # Closing the socket here is the disconnect.


def test_64_concurrent_streams_with_early_disconnects(server):
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=120)
    reference = client.completions.create(model="m", prompt="Request 0", max_tokens=MAX_TOKENS, temperature=0,
                                          extra_body={"ignore_eos": True}).choices[0].text
    results, errors = {}, []

    def complete(i):
        try:
            if i % 4 == 3:
                disconnect_mid_stream(server, f"Request {i}")
                results[i] = "disconnected"
                return
            parts = []
            for c in client.completions.create(model="m", prompt="Request 0" if i % 8 == 0 else f"Request {i}",
                                               max_tokens=MAX_TOKENS, temperature=0, stream=True,
                                               stream_options={"include_usage": True}, extra_body={"ignore_eos": True}):
                if c.choices:
                    parts.append(c.choices[0].text)
                if c.usage:
                    assert c.usage.completion_tokens == MAX_TOKENS
            results[i] = "".join(parts)
        except Exception as e:
            errors.append(f"{i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=complete, args=(i,)) for i in range(CONCURRENCY)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "every request ended in time"
    assert errors == []
    assert len(results) == CONCURRENCY
    # Greedy answers under load equal the answer given alone.
    for i in range(0, CONCURRENCY, 8):
        assert results[i] == reference, i
    print(f"{CONCURRENCY} streams in {time.monotonic() - start:.1f} s")

    # Afterwards: nothing running, nothing waiting, no KV block held.
    deadline = time.monotonic() + 10
    while True:
        text = server.get("/metrics")[2].decode()
        idle = (metric(text, "vllm:num_requests_running") == 0 and metric(text, "vllm:num_requests_waiting") == 0
                and metric(text, "vllm:kv_cache_usage_perc") == 0)
        if idle or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert idle, text
    aborted = metric(text, 'vllm:request_success_total{model_name="m",engine="0",finished_reason="abort"}')
    assert aborted == CONCURRENCY // 4, "each disconnected stream was aborted, not run to its 4000 tokens"
    load = json.loads(server.get("/load")[2])
    assert load["num_requests_running"] == 0 and load["server_load"] == 0


def test_non_streamed_request_is_aborted_when_its_client_disconnects(server):
    """A non-streamed completion whose client leaves is aborted in the engine (not run to its 4000
    tokens), its KV blocks freed, and the server keeps answering."""
    aborted_before = metric(server.get("/metrics")[2].decode(),
                            'vllm:request_success_total{model_name="m",engine="0",finished_reason="abort"}')
    body = json.dumps({"model": "m", "prompt": "Leave early", "max_tokens": 4000, "ignore_eos": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        deadline = time.monotonic() + 10
        while metric(server.get("/metrics")[2].decode(), "vllm:num_requests_running") < 1:
            assert time.monotonic() < deadline, "the request never started running"
            time.sleep(0.05)
    # The socket is closed here, long before 4000 tokens.
    deadline = time.monotonic() + 5
    while True:
        text = server.get("/metrics")[2].decode()
        if metric(text, "vllm:num_requests_running") == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert metric(text, "vllm:num_requests_running") == 0, text
    assert metric(text, "vllm:kv_cache_usage_perc") == 0
    aborted = metric(text, 'vllm:request_success_total{model_name="m",engine="0",finished_reason="abort"}')
    assert aborted == aborted_before + 1
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=60)
    assert client.completions.create(model="m", prompt="Still here", max_tokens=4, temperature=0).usage.completion_tokens == 4
