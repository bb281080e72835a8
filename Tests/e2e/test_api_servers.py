"""`pagoda serve --api-server-count K`: K API-server processes share one port (SO_REUSEPORT) over the same
engine cores. Both processes serve (per-process /metrics), greedy outputs equal one API server's, a bounded
concurrent load all succeeds, and killing one API server leaves the engine cores serving (the supervisor
starts it again)."""
import concurrent.futures
import json
import os
import re
import signal
import time

import pytest

from conftest import CONFORMANCE, free_port
from serve_process import ServeProcess, child_pids

MODEL = str(CONFORMANCE / "models" / "tiny-llama3")
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):",
           "The quick brown fox", "In the beginning"]
COMMON = ["--max-model-len", "512", "--served-model-name", "m", "--disable-log-requests", "--dtype", "float32",
          "--threads", "1", "--data-parallel-size", "2"]


def start(pagoda, *args):
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, *args])
    try:
        s.wait_healthy(timeout=240)
    except Exception:
        s.stop()
        raise
    return s


def complete(s, prompt, max_tokens=12):
    """One greedy completion on a new connection (so SO_REUSEPORT may hand it to either process)."""
    status, _, body = s.post("/v1/completions", {"model": "m", "prompt": prompt, "max_tokens": max_tokens,
                                                 "temperature": 0}, timeout=120)
    assert status == 200, body
    return json.loads(body)["choices"][0]["text"]


def scrape(s):
    """(api_server index, pid, requests finished by that process) from one /metrics answer."""
    text = s.get("/metrics")[2].decode()
    info = re.search(r'^pagoda:api_server_info\{[^}]*api_server="(\d+)"[^}]*pid="(\d+)"[^}]*\} 1', text, re.M)
    assert info, "no pagoda:api_server_info in /metrics"
    served = re.search(r'^pagoda:api_server_requests_total\{api_server="(\d+)"\} (\S+)', text, re.M)
    return int(info.group(1)), int(info.group(2)), float(served.group(2)) if served else 0.0


def per_process(s, want=2, timeout=60):
    """{index: (pid, requests)} from /metrics answers on new connections, until `want` processes answered."""
    seen = {}
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        index, pid, n = scrape(s)
        seen[index] = (pid, n)
    return seen


def children(s, marker):
    return child_pids(s.proc.pid, marker)


def exists(pid):
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def reference(pagoda):
    s = start(pagoda)
    try:
        return [complete(s, p) for p in PROMPTS]
    finally:
        s.stop()


@pytest.fixture(scope="module")
def two(pagoda):
    s = start(pagoda, "--api-server-count", "2")
    try:
        yield s
    finally:
        s.stop()


def test_both_api_servers_serve_the_same_engines(two, reference):
    s = two
    assert len(children(s, b"--api-server-index")) == 2
    assert len(s.engine_core_pids()) == 2
    # Both processes answer on the one port.
    seen = per_process(s)
    assert sorted(seen) == [0, 1], f"only {sorted(seen)} answered:\n{s.log_text()}"
    assert {pid for pid, _ in seen.values()} == set(children(s, b"--api-server-index"))
    # Greedy outputs equal one API server's, whichever process answers.
    assert [complete(s, p) for p in PROMPTS] == reference
    assert [complete(s, p) for p in PROMPTS] == reference

    # A bounded concurrent load (48 requests, 12 at a time, each on its own connection) all succeeds, and
    # each process finished some of it.
    before = {k: n for k, (_, n) in per_process(s).items()}
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        texts = list(pool.map(lambda i: complete(s, PROMPTS[i % len(PROMPTS)]), range(48)))
    assert texts == [reference[i % len(PROMPTS)] for i in range(48)]
    after = {k: n for k, (_, n) in per_process(s).items()}
    assert all(after[k] > before[k] for k in (0, 1)), (before, after)
    # The engines' ranks were spread over by both front-ends (each process's per-engine series).
    log = s.log_text()
    assert "2 API servers share port" in log
    assert "engine core rank 0 ready" in log and "engine core rank 1 ready" in log


def test_killing_an_api_server_leaves_the_engines_serving(two, reference):
    s = two
    engines = s.engine_core_pids()
    api = children(s, b"--api-server-index")
    assert len(engines) == 2 and len(api) == 2
    os.kill(api[0], signal.SIGKILL)
    # Wait until it has exited: the supervisor has reaped it (a zombie leader alone is not enough: its other
    # threads may still hold the listening socket, and a connection queued there would be reset).
    killed = rf"API server \d \(pid {api[0]}\) killed by signal 9 \(SIGKILL\)"
    deadline = time.monotonic() + 10
    while not re.search(killed, s.log_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Requests keep succeeding (the kernel drops the dead process's socket from the port's group).
    for i in range(12):
        assert complete(s, PROMPTS[i % len(PROMPTS)]) == reference[i % len(PROMPTS)]
    assert s.engine_core_pids() == engines
    # The supervisor logs the loss and starts the API server again; the new one serves too.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = children(s, b"--api-server-index")
        if len(now) == 2 and api[0] not in now:
            break
        time.sleep(0.2)
    now = children(s, b"--api-server-index")
    assert len(now) == 2 and api[0] not in now, s.log_text()
    assert re.search(rf"API server \d \(pid {api[0]}\) killed by signal 9 \(SIGKILL\); starting it again", s.log_text())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen = per_process(s, timeout=5)
        if {pid for pid, _ in seen.values()} == set(now):
            break
    assert {pid for pid, _ in per_process(s).values()} == set(now)
    assert s.engine_core_pids() == engines
    assert s.proc.poll() is None


def engines_up(s):
    """(api_server index, {engine rank: up}) from one /metrics answer."""
    text = s.get("/metrics")[2].decode()
    index = int(re.search(r'^pagoda:api_server_info\{[^}]*api_server="(\d+)"', text, re.M).group(1))
    up = {int(r): float(v) == 1 for r, v in re.findall(r'^pagoda:engine_up\{[^}]*engine="(\d+)"[^}]*\} (\S+)', text, re.M)}
    return index, up


def test_a_lost_engine_core_comes_back_to_every_api_server(two, reference):
    s = two
    engines = s.engine_core_pids()
    assert len(engines) == 2
    os.kill(engines[1], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while exists(engines[1]) and time.monotonic() < deadline:
        time.sleep(0.02)
    # The other rank serves meanwhile, in both API servers.
    for i in range(12):
        assert complete(s, PROMPTS[i % len(PROMPTS)]) == reference[i % len(PROMPTS)]
    # The supervisor starts it again; every API server reconnects and the rank is up in each.
    assert re.search(rf"engine core rank \d \(pid {engines[1]}\) killed by signal 9 \(SIGKILL\); starting it again", s.log_text())
    seen = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (seen.get(0) and seen.get(1)):
        index, up = engines_up(s)
        seen[index] = sorted(up) == [0, 1] and all(up.values())
        time.sleep(0.05)
    assert seen == {0: True, 1: True}, s.log_text()
    assert len(s.engine_core_pids()) == 2 and engines[1] not in s.engine_core_pids()
    assert s.log_text().count("rejoined") >= 2
    assert [complete(s, p) for p in PROMPTS] == reference


def test_ctrl_c_stops_every_process(pagoda):
    s = start(pagoda, "--api-server-count", "2")
    try:
        pids = children(s, b"--api-server-index") + s.engine_core_pids()
        assert len(pids) == 4
        os.killpg(s.proc.pid, signal.SIGINT)
        assert s.proc.wait(timeout=60) == 0
        for pid in pids:
            deadline = time.monotonic() + 10
            while exists(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not exists(pid), f"pid {pid} still runs after Ctrl-C"
    finally:
        s.stop()


def test_sigterm_drains_every_api_server(pagoda, small_model):
    """SIGTERM to `serve` drains every API server as a single server drains: in-flight streams finish, new
    requests and /health get 503, and `serve` exits 0."""
    from test_server_limits import Stream

    # Long streams (the small model, a 4096-token context) so that they run when the signal comes.
    s = ServeProcess(pagoda, small_model, free_port(),
                     ["--max-model-len", "4096", "--served-model-name", "m", "--disable-log-requests", "--threads", "1",
                      "--data-parallel-size", "2", "--api-server-count", "2", "--shutdown-timeout", "90"])
    streams = []
    try:
        s.wait_healthy(timeout=240)
        streams = [Stream(s, 4000) for _ in range(2)]
        for st in streams:
            assert st.first.wait(60) and st.end is None, st.end
        os.kill(s.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if s.get("/health", timeout=2)[0] == 503:
                    break
            except OSError:
                break
            time.sleep(0.05)
        if any(st.end is None for st in streams):
            try:
                status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})
                assert status == 503 and "shutting down" in json.loads(body)["error"]["message"], (status, body)
            except OSError:
                # A fast machine generates the streams to their end while the client still reads what is
                # buffered: the API servers have drained and closed the port. Only then is a refusal right.
                assert "draining" in s.log_text()
        for st in streams:
            st.thread.join(timeout=100)
            # Ran to its end (max_tokens; a chunk may carry no text while a multi-byte character is held back).
            assert st.end == "completed" and st.finish_reason == "length" and st.tokens > 3000, (st.end, st.tokens)
        assert s.proc.wait(timeout=60) == 0
        assert "draining" in s.log_text() and "second signal: aborting" not in s.log_text()
    finally:
        for st in streams:
            st.close()
        s.stop()


def test_every_api_server_holds_the_in_flight_limit(pagoda, small_model):
    """Each API server takes an admission ticket per generation request (`--max-concurrent-requests` holds
    per process): three long streams over two processes with a limit of 1 each leave at least one 429."""
    from test_server_limits import LONG_MODEL_LEN, LONG_STREAM, Stream

    # Streams long enough that the server is still generating each when the third arrives (a 4000-token
    # stream once ended before the third request was sent, and that request was rightly admitted).
    s = ServeProcess(pagoda, small_model, free_port(),
                     ["--max-model-len", LONG_MODEL_LEN, "--served-model-name", "m", "--disable-log-requests", "--threads", "1",
                      "--data-parallel-size", "2", "--api-server-count", "2", "--max-concurrent-requests", "1"])
    streams = []
    try:
        s.wait_healthy(timeout=240)
        streams = [Stream(s, LONG_STREAM) for _ in range(3)]
        for st in streams:
            st.first.wait(60)
        ended = [st.end for st in streams]
        refused = [e for e in ended if e is not None and "429" in e]
        assert len(refused) >= 1, (ended, [st.tokens for st in streams])
        assert 1 <= sum(e is None for e in ended) <= 2, ended
    finally:
        for st in streams:
            st.close()
        s.stop()


def test_503_while_the_engine_cores_load_then_200(pagoda):
    """With --api-server-count 2 the shared port opens while the engine cores still load: /health and the routes
    that need the engine answer 503 with OpenAI error JSON on every API server, then 200 once the engine cores are
    up. The engine cores are held stopped (SIGSTOP) as soon as they appear, so the starting phase lasts as long as
    the test needs, on any machine."""
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, "--api-server-count", "2"])
    stopped = set()
    try:
        deadline = time.monotonic() + 60
        while len(stopped) < 2:
            assert s.proc.poll() is None and time.monotonic() < deadline, s.log_text()[-2000:]
            for pid in s.engine_core_pids():
                if pid not in stopped:
                    os.kill(pid, signal.SIGSTOP)
                    stopped.add(pid)
            time.sleep(0.005)
        # Both API servers answer (each /metrics names its process) while the engine cores are stopped.
        status, _, body = s.first_answer("/health", timeout=120)
        assert status == 503, body
        assert len(per_process(s, timeout=60)) == 2
        for _ in range(6):  # new connections: the kernel spreads them over both processes
            status, _, body = s.get("/health", timeout=5)
            error = json.loads(body)["error"]
            assert status == 503 and error["code"] == 503 and "starting" in error["message"], (status, body)
            status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1}, timeout=5)
            assert status == 503 and json.loads(body)["error"]["code"] == 503, (status, body)
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        seen = []
        deadline = time.monotonic() + 240
        while not seen or seen[-1] != 200:
            assert s.proc.poll() is None and time.monotonic() < deadline, (seen[-5:], s.log_text()[-2000:])
            seen.append(s.get("/health", timeout=5)[0])
            time.sleep(0.05)
        assert set(seen) <= {503, 200}, seen
        # Both processes serve once up: every answer on new connections is a completion.
        for prompt in PROMPTS[:4]:
            complete(s, prompt, max_tokens=2)
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        s.stop()
