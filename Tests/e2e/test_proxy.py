"""`pagoda proxy` in front of fake OpenAI backends (Tests/e2e/fake_backend.py): pass-through, balancing,
fail-over, leak-free accounting. The same checks against real `pagoda serve` backends: test_proxy_serve.py."""
import concurrent.futures as futures
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from router_harness import metrics, per_backend, request, start_fake, start_proxy, stream_events


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


def client(port, **kw):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=30, **kw)


def settle(port, backends, timeout=10):
    """Waits until the proxy has nothing in flight; returns the last metrics."""
    deadline = time.time() + timeout
    while True:
        m = metrics(port)
        if sum(per_backend(m, "pagoda_proxy_backend_in_flight_requests", backends)) == 0 or time.time() > deadline:
            return m
        time.sleep(0.05)


def assert_no_leak(port, backends):
    m = settle(port, backends)
    assert per_backend(m, "pagoda_proxy_backend_in_flight_cost", backends) == [0.0] * len(backends)
    assert per_backend(m, "pagoda_proxy_backend_in_flight_requests", backends) == [0.0] * len(backends)
    return m


def test_answers_equal_a_backend_asked_directly(pagoda, tmp_path, procs):
    backends = []
    for rank in range(2):
        proc, port = start_fake(tmp_path, rank=rank, size=2)
        procs.append(proc)
        backends.append(port)
    proxy, pport = start_proxy(pagoda, tmp_path, backends)
    procs.append(proxy)
    via, direct = client(pport), client(backends[1])
    for i in range(4):
        prompt = f"The capital of country number {i} is"
        a = via.completions.create(model="fake-model", prompt=prompt, max_tokens=8, temperature=0)
        b = direct.completions.create(model="fake-model", prompt=prompt, max_tokens=8, temperature=0)
        assert a.choices[0].text == b.choices[0].text and a.choices[0].text
        sa = "".join(c.choices[0].text for c in via.completions.create(
            model="fake-model", prompt=prompt, max_tokens=8, temperature=0, stream=True))
        assert sa == b.choices[0].text
        messages = [{"role": "user", "content": f"Say something about {i}"}]
        ca = via.chat.completions.create(model="fake-model", messages=messages, max_tokens=6, temperature=0)
        cb = direct.chat.completions.create(model="fake-model", messages=messages, max_tokens=6, temperature=0)
        assert ca.choices[0].message.content == cb.choices[0].message.content
        chunks = list(via.chat.completions.create(model="fake-model", messages=messages, max_tokens=6, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == cb.choices[0].message.content
    # Streams come through as SSE, chunk by chunk, and X-Request-Id is passed on both ways.
    status, headers, events = stream_events(pport, "/v1/completions", headers={"X-Request-Id": "req-abc-123"},
                                            body={"model": "fake-model", "prompt": "hi", "max_tokens": 5, "stream": True})
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-request-id"] == "req-abc-123"
    assert len(events) == 6 and events[-1] == "data: [DONE]"
    r = request(pport, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
    generated = r.headers["x-request-id"]
    assert generated.startswith("proxy-")
    seen = set()
    for port in backends:
        seen |= set(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read())["request_ids"])
    assert {"req-abc-123", generated} <= seen
    # Both backends got work, and nothing is left in flight.
    m = assert_no_leak(pport, backends)
    assert all(v > 0 for v in per_backend(m, "pagoda_proxy_backend_requests_routed_total", backends))


def test_models_health_metrics_and_bad_requests(pagoda, tmp_path, procs):
    proc, port = start_fake(tmp_path)
    procs.append(proc)
    proxy, pport = start_proxy(pagoda, tmp_path, [port])
    procs.append(proxy)
    assert [m.id for m in client(pport).models.list().data] == ["fake-model"]
    for path in ("/health", "/healthcheck"):
        r = request(pport, "GET", path)
        assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["dp_instances"] == 1
    r = request(pport, "GET", "/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    assert "# TYPE pagoda_proxy_backend_in_flight_cost gauge" in r.text
    assert metrics(pport)[("pagoda_proxy_backend_healthy", f"127.0.0.1:{port}")] == 1
    # Bad bodies: OpenAI error JSON naming the field, 400; nothing routed.
    for body, param in [(b"{not json", None), (b'{"max_tokens": 3}', "prompt"),
                        (b'{"prompt": "x", "max_tokens": "ten"}', "max_tokens")]:
        r = request(pport, "POST", "/v1/completions", body, {"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param and r.json()["error"]["message"]
    r = request(pport, "POST", "/v1/chat/completions", {"prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        client(pport).completions.create(model="m", prompt="x", max_tokens="ten")  # type: ignore[arg-type]
    # A backend's own 4xx passes through unchanged.
    r = request(pport, "POST", "/v1/completions", {"prompt": "[[status:422]]", "max_tokens": 2})
    assert r.status_code == 422 and r.json()["error"]["message"] == "injected 422"
    assert metrics(pport)[("pagoda_proxy_backend_requests_routed_total", f"127.0.0.1:{port}")] == 1


def test_long_and_short_prompts_keep_in_flight_cost_balanced(pagoda, tmp_path, procs):
    backends = []
    for rank in range(2):
        proc, port = start_fake(tmp_path, rank=rank, size=2, token_delay=0.01)
        procs.append(proc)
        backends.append(port)
    proxy, pport = start_proxy(pagoda, tmp_path, backends)
    procs.append(proxy)
    c = client(pport)
    long_prompt = "word " * 800   # ~1000 estimated tokens
    short_prompt = "hi"

    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(per_backend(metrics(pport), "pagoda_proxy_backend_in_flight_cost", backends))
            time.sleep(0.02)

    def one(i):
        # Alternating long and short: round-robin would send every long prompt to the same backend.
        prompt = long_prompt if i % 2 == 0 else short_prompt
        return c.completions.create(model="fake-model", prompt=prompt, max_tokens=20).choices[0].text

    sampler = threading.Thread(target=sample)
    sampler.start()
    with futures.ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(one, range(24)))
    stop.set()
    sampler.join()
    assert all(texts)
    m = assert_no_leak(pport, backends)
    routed = per_backend(m, "pagoda_proxy_backend_routed_cost_total", backends)
    assert min(routed) >= 0.6 * max(routed), routed
    busy = [s for s in samples if sum(s) > 0]
    assert busy, "no in-flight sample taken"
    # While loaded, neither backend carries much more than the other: the gap stays within about
    # one long request (1010 cost units), the granularity of the decisions.
    assert max(abs(a - b) for a, b in busy) <= 2100, max(busy, key=lambda s: abs(s[0] - s[1]))
    # Round robin on the same load puts all long prompts on one backend (the contrast the rule is for).
    proxy_rr, rport = start_proxy(pagoda, tmp_path, backends, policy="round-robin")
    procs.append(proxy_rr)
    crr = client(rport)
    for i in range(8):
        crr.completions.create(model="fake-model", prompt=long_prompt if i % 2 == 0 else short_prompt, max_tokens=20)
    rr = per_backend(metrics(rport), "pagoda_proxy_backend_routed_cost_total", backends)
    assert min(rr) < 0.1 * max(rr), rr


def test_failed_backend_is_retried_elsewhere_before_any_byte(pagoda, tmp_path, procs):
    bad, bad_port = start_fake(tmp_path, rank=0, inject="[[drop]]")  # accepts, then hangs up on every completion
    good, good_port = start_fake(tmp_path, rank=1)
    procs += [bad, good]
    proxy, pport = start_proxy(pagoda, tmp_path, [bad_port, good_port])
    procs.append(proxy)
    c = client(pport)
    direct = client(good_port)
    for i in range(6):
        prompt = f"retry me {i}"
        expect = direct.completions.create(model="m", prompt=prompt, max_tokens=4).choices[0].text
        assert c.completions.create(model="m", prompt=prompt, max_tokens=4).choices[0].text == expect
        streamed = "".join(x.choices[0].text for x in c.completions.create(model="m", prompt=prompt, max_tokens=4, stream=True))
        assert streamed == expect
        time.sleep(0.3)  # let a probe bring the bad backend back so it is tried again
    m = assert_no_leak(pport, [bad_port, good_port])
    assert m[("pagoda_proxy_backend_failures_total", f"127.0.0.1:{bad_port}")] >= 2
    assert m[("pagoda_proxy_requests_retried_total", None)] >= 2
    # With every backend refusing, the client gets a clear 503 (never an empty 200).
    bad.stop()
    good.stop()
    r = request(pport, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 2})
    assert r.status_code == 503 and "backend" in r.json()["error"]["message"]
    deadline = time.time() + 5
    while request(pport, "GET", "/health").status_code != 503:
        assert time.time() < deadline, "proxy still reports healthy with every backend gone"
        time.sleep(0.1)
    assert_no_leak(pport, [bad_port, good_port])


def test_broken_stream_ends_with_an_error_event_not_silence(pagoda, tmp_path, procs):
    proc, port = start_fake(tmp_path)
    procs.append(proc)
    proxy, pport = start_proxy(pagoda, tmp_path, [port])
    procs.append(proxy)
    c = client(pport)
    with pytest.raises(openai.APIError) as raised:
        for _ in c.completions.create(model="m", prompt="[[break-after:3]] go", max_tokens=10, stream=True):
            pass
    assert "failed after the stream started" in str(raised.value)
    _, _, lines = stream_events(pport, "/v1/chat/completions",
                                {"messages": [{"role": "user", "content": "[[break-after:2]]"}], "stream": True})
    assert len(lines) == 3 and '"error"' in lines[-1] and "[DONE]" not in "".join(lines)
    # A non-streamed answer cut in half is not passed on as a truncated 200: it is retried, then refused.
    r = request(pport, "POST", "/v1/completions", {"prompt": "[[break-after:1]]"})
    assert r.status_code == 503, r.text
    assert_no_leak(pport, [port])


def test_killing_a_backend_mid_run_loses_no_unstarted_request(pagoda, tmp_path, procs):
    backends, fakes = [], []
    for rank in range(3):
        proc, port = start_fake(tmp_path, rank=rank, size=3, token_delay=0.02)
        procs.append(proc)
        fakes.append(proc)
        backends.append(port)
    proxy, pport = start_proxy(pagoda, tmp_path, backends)
    procs.append(proxy)
    c = client(pport)
    expected = {}
    direct = client(backends[0])
    for i in range(36):
        expected[i] = direct.completions.create(model="m", prompt=f"request {i}", max_tokens=10).choices[0].text

    def one(i):
        if i % 2 == 0:
            text = c.completions.create(model="m", prompt=f"request {i}", max_tokens=10).choices[0].text
            return ("plain", text == expected[i], None)
        got = []
        try:
            for chunk in c.completions.create(model="m", prompt=f"request {i}", max_tokens=10, stream=True):
                got.append(chunk.choices[0].text)
        except openai.APIError as e:
            # Allowed only for a stream that had started: it must have said so in-band.
            return ("stream-error", bool(got), str(e))
        return ("stream", "".join(got) == expected[i], None)

    def killer():
        time.sleep(0.6)
        fakes[1].stop(signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    with futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(36)))
    t.join()
    # Every non-streamed request and every stream that had not started was answered in full.
    assert all(ok for kind, ok, _ in results if kind in ("plain", "stream")), results
    errors = [r for r in results if r[0] == "stream-error"]
    assert all(started for _, started, _ in errors), errors
    assert len(errors) <= 3  # at most the streams in flight on the killed backend (concurrency 6, 3 backends)
    assert len([r for r in results if r[0] != "stream-error"]) >= 33
    m = assert_no_leak(pport, backends)
    assert m[("pagoda_proxy_backend_healthy", f"127.0.0.1:{backends[1]}")] == 0


def test_clients_that_disconnect_early_leak_no_cost(pagoda, tmp_path, procs):
    backends = []
    fakes = []
    for rank in range(2):
        proc, port = start_fake(tmp_path, rank=rank, size=2, token_delay=0.05)
        procs.append(proc)
        fakes.append(port)
        backends.append(port)
    proxy, pport = start_proxy(pagoda, tmp_path, backends)
    procs.append(proxy)

    def stream_then_leave(i):
        stream_events(pport, "/v1/completions", {"prompt": f"leave {i}", "max_tokens": 200, "stream": True},
                      stop_after=1)  # one event, then hang up

    def wait_too_little(i):
        with pytest.raises(TimeoutError):
            request(pport, "POST", "/v1/completions", {"prompt": f"impatient {i}", "max_tokens": 20}, timeout=0.3)

    def leave_before_anything(i):
        s = socket.create_connection(("127.0.0.1", pport))
        body = json.dumps({"prompt": f"gone {i}", "max_tokens": 30, "stream": i % 2 == 0}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.05)
        s.close()

    with futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda f: f[0](f[1]), [(fn, i) for i in range(4)
                                             for fn in (stream_then_leave, wait_too_little, leave_before_anything)]))
    m = assert_no_leak(pport, backends)
    assert sum(per_backend(m, "pagoda_proxy_backend_requests_routed_total", backends)) == 12
    # The backends saw every request go away, streamed or not (the proxy dropped them), and nothing is left
    # running there.
    deadline = time.time() + 15
    while True:
        stats = [json.loads(urllib.request.urlopen(f"http://127.0.0.1:{p}/stats").read()) for p in backends]
        if sum(s["in_flight"] for s in stats) == 0:
            break
        assert time.time() < deadline, stats
        time.sleep(0.1)
    seen = sum(len(s["request_ids"]) for s in stats)  # a client may leave before its request got there
    assert seen >= 8 and sum(s["disconnected"] for s in stats) == seen, stats
    assert sum(s["completed"] for s in stats) == 0, stats


def test_http_details_continue_http10_unknown_routes_and_sigterm(pagoda, tmp_path, procs):
    proc, port = start_fake(tmp_path)
    procs.append(proc)
    proxy, pport = start_proxy(pagoda, tmp_path, [port])
    procs.append(proxy)

    def raw(request: bytes, body: bytes = b"", wait_continue=False) -> bytes:
        with socket.create_connection(("127.0.0.1", pport), timeout=5) as s:
            s.sendall(request)
            if wait_continue:  # curl's way for bodies over 1 KiB: the body only after "100 Continue"
                s.settimeout(0.5)
                assert s.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
                s.settimeout(5)
            s.sendall(body)
            out = b""
            while b"\r\n0\r\n\r\n" not in out and not (b"content-length" in out.lower() and out.endswith(b"}")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out

    body = json.dumps({"prompt": "word " * 400, "max_tokens": 3}).encode()
    out = raw(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body), body, wait_continue=True)
    assert out.startswith(b"HTTP/1.1 200 OK") and b'"text_completion"' in out, out[:300]
    # An HTTP/1.0 client gets its stream unchunked, ended by the close.
    body = json.dumps({"prompt": "hi", "max_tokens": 2, "stream": True}).encode()
    out = raw(b"POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body),
              body)
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"transfer-encoding" not in head.lower(), head
    assert rest.count(b"data: ") == 3 and rest.endswith(b"data: [DONE]\n\n"), rest
    r = request(pport, "GET", "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"
    r = request(pport, "GET", "/v1/completions")
    assert r.status_code == 405 and r.json()["error"]["message"]
    proxy.popen.send_signal(signal.SIGTERM)
    assert proxy.popen.wait(timeout=10) == 0, proxy.output()


def test_a_client_that_reads_slowly_holds_the_backend_back(pagoda, tmp_path, procs):
    """Back-pressure: the proxy stops reading a stream from the backend while its client does not read, instead of
    buffering the whole answer, and passes on every event once the client reads."""
    import re
    proc, port = start_fake(tmp_path, token_delay=0)
    procs.append(proc)
    proxy, pport = start_proxy(pagoda, tmp_path, [port])
    procs.append(proxy)
    n = 3000  # 10 KB each, 30 MB in all: more than the socket buffers on the way hold
    body = json.dumps({"prompt": "[[pad:10000]]", "max_tokens": n, "stream": True}).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(60)
        s.connect(("127.0.0.1", pport))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(2)  # the backend writes all of it in well under a second when nothing holds it back
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/stats").read())
        assert stats["in_flight"] == 1 and stats["completed"] == 0, stats
        chunks = []
        while True:
            chunk = s.recv(1 << 20)
            chunks.append(chunk)
            if not chunk or chunks[-1].endswith(b"\r\n0\r\n\r\n") or b"".join(chunks[-2:]).endswith(b"\r\n0\r\n\r\n"):
                break
    head, _, chunked = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert chunked.endswith(b"\r\n0\r\n\r\n")
    events = re.sub(rb"(^|\r\n)[0-9a-f]+\r\n", b"", chunked[:-7])  # the events carry no CR: only the framing does
    assert events.count(b"data: ") == n + 1 and events.endswith(b"data: [DONE]\n\n"), events[-200:]
    assert_no_leak(pport, [port])


def test_bad_command_lines_fail_with_one_line(pagoda):
    for args, needle in [
        (["--dp-hosts", "127.0.0.1", "127.0.0.1", "--dp-ports", "9000"], "--dp-ports"),
        (["--backends", "127.0.0.1:99999"], "port"),
        ([], "no backends"),
        (["--backends", "127.0.0.1:9000", "--policy", "random"], "--policy"),
    ]:
        r = subprocess.run([pagoda, "proxy", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert needle in r.stderr, r.stderr


def test_cache_aware_sends_a_shared_prefix_back_to_the_same_backend(pagoda, tmp_path, procs):
    backends = []
    for rank in range(3):
        proc, port = start_fake(tmp_path, rank=rank, size=3)
        procs.append(proc)
        backends.append(port)
    proxy, pport = start_proxy(pagoda, tmp_path, backends, policy="cache-aware")
    procs.append(proxy)
    c = client(pport)
    system = "You are a careful assistant who answers in one short sentence. " * 4
    for i in range(6):
        c.chat.completions.create(model="m", max_tokens=4, messages=[
            {"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}])
    m = assert_no_leak(pport, backends)
    routed = per_backend(m, "pagoda_proxy_backend_requests_routed_total", backends)
    assert sorted(routed) == [0, 0, 6], routed
    assert m[("pagoda_proxy_cache_affinity_hits_total", None)] == 5
    # Unrelated prompts are spread by load.
    for i in range(6):
        c.completions.create(model="m", prompt=f"{i} unrelated " * 30 + str(i), max_tokens=2)
    routed = per_backend(metrics(pport), "pagoda_proxy_backend_requests_routed_total", backends)
    assert min(routed) >= 1, routed


def test_tokenizer_counts_prompt_tokens_exactly(pagoda, tmp_path, procs, small_model):
    import pathlib
    from conftest import CONFORMANCE
    cases = [json.loads(line) for line in (CONFORMANCE / "tokenizers" / "qwen2" / "cases.jsonl").read_text().splitlines()]
    # tiny-qwen3 ships the qwen2 tokenizer: its reference ids are the ground truth.
    assert (pathlib.Path(small_model) / "tokenizer.json").read_bytes() == \
        (CONFORMANCE / "tokenizers" / "qwen2" / "tokenizer.json").read_bytes()
    case = max((c for c in cases if not c["add_special_tokens"]), key=lambda c: len(c["ids"]))
    assert abs(len(case["ids"]) - (len(case["text"].encode()) + 3) // 4) > 2  # the byte estimate would differ
    proc, port = start_fake(tmp_path)
    procs.append(proc)
    proxy, pport = start_proxy(pagoda, tmp_path, [port], extra=["--tokenizer", small_model])
    procs.append(proxy)
    r = request(pport, "POST", "/v1/completions", {"prompt": case["text"], "max_tokens": 10})
    assert r.status_code == 200, r.text
    routed = metrics(pport)[("pagoda_proxy_backend_routed_cost_total", f"127.0.0.1:{port}")]
    assert routed == len(case["ids"]) + 0.5 * 10
    bad = __import__("subprocess").run([pagoda, "proxy", "--backends", "127.0.0.1:9", "--tokenizer", str(tmp_path)],
                                       capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "--tokenizer" in bad.stderr, bad.stderr
