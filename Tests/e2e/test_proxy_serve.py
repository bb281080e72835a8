"""`pagoda proxy` in front of real `pagoda serve` backends with the small model (issue 8's acceptance):
answers equal a backend's own, balanced in-flight cost, fail-over when a backend is killed, no leaked cost."""
import concurrent.futures as futures
import signal
import threading
import time

import openai
import pytest

from router_harness import metrics, per_backend, start_proxy, start_serve, stream_events


@pytest.fixture(scope="module")
def cluster(pagoda, small_model, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("proxy-serve")
    procs, ports = [], []
    try:
        for rank in range(3):
            proc, port = start_serve(pagoda, log_dir, small_model, rank=rank, size=3)
            procs.append(proc)
            ports.append(port)
        proxy, pport = start_proxy(pagoda, log_dir, ports)
        procs.append(proxy)
        model = openai.OpenAI(base_url=f"http://127.0.0.1:{ports[0]}/v1", api_key="x").models.list().data[0].id
        yield {"ports": ports, "proxy": pport, "procs": procs, "model": model}
    finally:
        for p in reversed(procs):
            p.stop()


def client(port):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=120)


def settled(pport, ports, timeout=20):
    deadline = time.time() + timeout
    while True:
        m = metrics(pport)
        if sum(per_backend(m, "pagoda_proxy_backend_in_flight_requests", ports)) == 0 or time.time() > deadline:
            return m
        time.sleep(0.05)


def test_answers_through_the_proxy_equal_a_backend_asked_directly(cluster):
    via, direct, model = client(cluster["proxy"]), client(cluster["ports"][2]), cluster["model"]
    for prompt in ["The quick brown fox", "Once upon a time", "1, 2, 3,"]:
        expect = direct.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0).choices[0].text
        assert via.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0).choices[0].text == expect
        streamed = via.completions.create(model=model, prompt=prompt, max_tokens=8, temperature=0, stream=True)
        assert "".join(c.choices[0].text for c in streamed) == expect
    messages = [{"role": "user", "content": "Hello, who are you?"}]
    expect = direct.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    got = via.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
    assert got.choices[0].message.content == expect.choices[0].message.content
    chunks = via.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expect.choices[0].message.content


def test_mixed_lengths_spread_by_cost_and_early_disconnects_leak_nothing(cluster):
    pport, ports, model = cluster["proxy"], cluster["ports"], cluster["model"]
    c = client(pport)
    before = per_backend(metrics(pport), "pagoda_proxy_backend_requests_routed_total", ports)
    long_prompt = "The history of the city is long and " * 20   # ~180 estimated tokens; cost ~183 with max_tokens 6
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(per_backend(metrics(pport), "pagoda_proxy_backend_in_flight_cost", ports))
            time.sleep(0.02)

    def one(i):
        prompt = long_prompt if i % 3 == 0 else f"Hi {i}"
        return c.completions.create(model=model, prompt=prompt, max_tokens=6, temperature=0).choices[0].text

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with futures.ThreadPoolExecutor(6) as pool:
            assert all(isinstance(t, str) for t in pool.map(one, range(18)))
            # Streams the clients abandon after the first event.
            list(pool.map(lambda i: stream_events(pport, "/v1/completions", {"model": model, "prompt": f"leave {i}",
                                                                             "max_tokens": 64, "stream": True},
                                                  stop_after=1, timeout=60), range(6)))
    finally:
        stop.set()
        sampler.join()
    m = settled(pport, ports)
    assert per_backend(m, "pagoda_proxy_backend_in_flight_cost", ports) == [0.0] * 3
    routed = [a - b for a, b in zip(per_backend(m, "pagoda_proxy_backend_requests_routed_total", ports), before)]
    assert min(routed) >= 1, routed
    busy = [s for s in samples if sum(s) > 0]
    assert busy
    # Least cost in flight: the spread between backends stays within about two long requests.
    assert max(max(s) - min(s) for s in busy) <= 2 * 183 + 10, max(busy, key=lambda s: max(s) - min(s))


def test_killing_a_backend_loses_no_request_that_had_not_started_streaming(cluster):
    pport, ports, procs, model = cluster["proxy"], cluster["ports"], cluster["procs"], cluster["model"]
    c = client(pport)
    killed_busy = []

    def one(i):
        return c.completions.create(model=model, prompt=f"Count to {i}:", max_tokens=12, temperature=0).choices[0].text

    def killer():
        # Kill backend 1 while it has requests in flight, so the proxy must fail them over.
        deadline = time.time() + 30
        while time.time() < deadline:
            busy = per_backend(metrics(pport), "pagoda_proxy_backend_in_flight_requests", ports)[1]
            if busy > 0:
                killed_busy.append(busy)
                break
            time.sleep(0.005)
        procs[1].stop(signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    with futures.ThreadPoolExecutor(6) as pool:
        texts = list(pool.map(one, range(48)))  # raises if any request was lost
    t.join()
    assert len(texts) == 48
    assert killed_busy, "backend 1 never had a request in flight before it was killed"
    m = settled(pport, ports)
    assert per_backend(m, "pagoda_proxy_backend_in_flight_cost", ports) == [0.0] * 3
    # Health comes from periodic probes (every 0.2 s here): the dead backend is marked down soon after.
    deadline = time.time() + 10
    while m[("pagoda_proxy_backend_healthy", f"127.0.0.1:{ports[1]}")] != 0 and time.time() < deadline:
        time.sleep(0.1)
        m = metrics(pport)
    assert m[("pagoda_proxy_backend_healthy", f"127.0.0.1:{ports[1]}")] == 0
