"""A client that sends a streaming request and never reads its answer: the request still ends within its token
budget (its KV blocks return to the pool), other clients are served meanwhile, and the server lets go of the
stuck connection once the client closes it."""
import json
import socket
import time

import openai

from conftest import free_port
from serve_process import ServeProcess


def kv_and_running(server):
    text = server.get("/metrics")[2].decode()
    values = {}
    for line in text.splitlines():
        for name in ("vllm:kv_cache_usage_perc", "vllm:num_requests_running"):
            if line.startswith(name):
                values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def test_a_client_that_never_reads_does_not_hold_the_kv_cache_or_block_others(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(), ["--max-model-len", "4096", "--served-model-name", "m"])
    stuck = []
    try:
        s.wait_healthy()
        body = json.dumps({"model": "m", "prompt": "go", "max_tokens": 600, "stream": True, "ignore_eos": True}).encode()
        for _ in range(2):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the unread answer backs up into the server
            c.connect(("127.0.0.1", s.port))
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            stuck.append(c)  # never read
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="x", max_retries=0, timeout=60)
        # Others are served while the stuck clients' answers pile up unread.
        for _ in range(3):
            r = client.completions.create(model="m", prompt="hello", max_tokens=8, extra_body={"ignore_eos": True})
            assert r.usage.completion_tokens == 8
        # The stuck requests run to their token budget and free their blocks, read or not.
        deadline = time.monotonic() + 180
        while True:
            m = kv_and_running(s)
            if m["vllm:kv_cache_usage_perc"] == 0 and m["vllm:num_requests_running"] == 0:
                break
            assert time.monotonic() < deadline, f"the unread requests still hold the engine: {m}"
            time.sleep(0.2)
        for c in stuck:
            c.close()
        stuck.clear()
        assert client.completions.create(model="m", prompt="hello", max_tokens=4).usage.completion_tokens == 4
        assert s.proc.poll() is None
    finally:
        for c in stuck:
            c.close()
        s.stop()
