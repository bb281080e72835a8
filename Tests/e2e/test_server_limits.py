"""`pagoda serve`'s limits as policy (in-flight requests: 429 with Retry-After; body size: 413), SIGTERM's
drain (`--shutdown-timeout`: in-flight requests finish, new ones get 503, what is left when the grace period
ends gets an error), and which routes `--api-key` guards."""
import json
import os
import signal
import threading
import time

import openai
import pytest

from conftest import free_port
from serve_process import ServeProcess, request


# A stream long enough that the server is still generating it while a test takes its next steps, however fast
# the engine decodes: a finished stream's admission ticket is back even while the client still reads the
# buffered rest, so a stream that ends too soon frees the place a test counts on. In CI a 4000-token stream of
# the tiny model once ended before the test's next request; 30000 tokens are many times that margin, and the
# tests close the streams (aborting them) instead of waiting for their end.
LONG_STREAM = 30000
LONG_MODEL_LEN = "32768"


def start(pagoda, model, *args, env=None):
    s = ServeProcess(pagoda, model, free_port(), ["--max-model-len", LONG_MODEL_LEN, "--served-model-name", "m", *args],
                     env=env)
    try:
        s.wait_healthy()
    except Exception:
        s.stop()
        raise
    return s


class Stream:
    """A long streamed completion on its own thread: records its first token, its tokens and how it ended."""

    def __init__(self, server, max_tokens):
        self.client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=60)
        self.first = threading.Event()
        self.tokens = 0
        self.finish_reason = None
        self.end = None
        self.response = None
        self.thread = threading.Thread(target=self.run, args=(max_tokens,), daemon=True)
        self.thread.start()

    def run(self, max_tokens):
        try:
            self.response = self.client.completions.create(model="m", prompt="go", max_tokens=max_tokens, stream=True,
                                                           extra_body={"ignore_eos": True})
            for chunk in self.response:
                if chunk.choices and chunk.choices[0].text is not None:
                    self.tokens += 1
                    self.first.set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    self.finish_reason = chunk.choices[0].finish_reason
            self.end = "completed"
        except Exception as e:  # noqa: BLE001 - the test asserts on how the stream ended
            self.end = f"error: {type(e).__name__}: {e}"
        finally:
            self.first.set()

    def close(self):
        if self.response is not None:
            self.response.close()
        self.thread.join(timeout=15)


def test_in_flight_limit_answers_429_with_retry_after_and_frees_places(pagoda, small_model):
    s = start(pagoda, small_model, "--max-concurrent-requests", "2")
    streams = []
    try:
        streams = [Stream(s, LONG_STREAM) for _ in range(2)]
        for st in streams:
            assert st.first.wait(30) and st.end is None, st.end
        status, headers, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})
        assert status == 429, body
        err = json.loads(body)["error"]
        assert err["code"] == 429 and err["type"] == "RateLimitError" and "max-concurrent-requests" in err["message"]
        assert int(headers["Retry-After"]) >= 1
        # Tokenizing costs no generation place.
        assert s.post("/tokenize", {"model": "m", "prompt": "x"})[0] == 200
        for st in streams:
            st.close()
        # The places come back when the clients leave: a request is served again within a bound.
        deadline = time.monotonic() + 15
        while True:
            status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200, body
    finally:
        for st in streams:
            st.close()
        s.stop()


def test_body_over_the_limit_is_413(pagoda, small_model):
    s = start(pagoda, small_model, "--max-request-body-bytes", "1000")
    try:
        status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x" * 2000, "max_tokens": 1})
        assert status == 413 and json.loads(body)["error"]["code"] == 413
        assert s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})[0] == 200
    finally:
        s.stop()


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(pagoda, small_model):
    s = start(pagoda, small_model, "--shutdown-timeout", "60")
    try:
        st = Stream(s, 300)
        assert st.first.wait(30) and st.end is None, st.end
        os.kill(s.proc.pid, signal.SIGTERM)
        # Draining: new requests and /health get 503 while the stream goes on.
        deadline = time.monotonic() + 10
        while s.get("/health")[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        if st.end is None:  # (a fast machine may finish 300 tokens first; then only the exit is left to check)
            status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})
            assert status == 503 and "shutting down" in json.loads(body)["error"]["message"]
        st.thread.join(timeout=60)
        assert st.end == "completed" and st.finish_reason == "length" and st.tokens == 300, (st.end, st.tokens)
        assert s.proc.wait(timeout=20) == 0
        assert "draining 1 request" in s.log_text()
    finally:
        s.stop()


@pytest.mark.parametrize("timeout", ["0", "1"])
def test_what_is_left_after_the_grace_period_ends_with_an_error(pagoda, small_model, timeout):
    s = start(pagoda, small_model, "--shutdown-timeout", timeout)
    try:
        st = Stream(s, LONG_STREAM)
        assert st.first.wait(30) and st.end is None, st.end
        sent = time.monotonic()
        os.kill(s.proc.pid, signal.SIGTERM)
        st.thread.join(timeout=30)
        assert st.end is not None and st.end.startswith("error") and "shut down" in st.end, st.end
        assert s.proc.wait(timeout=20) == 0
        assert time.monotonic() - sent < float(timeout) + 15
        assert "aborting 1 request" in s.log_text()
    finally:
        s.stop()


def test_api_key_guards_work_routes_and_optionally_all(pagoda, small_model):
    env = dict(os.environ, VLLM_API_KEY="from-env")
    s = start(pagoda, small_model, env=env)
    try:
        # Every route that costs work, also spelled with the slashes the router ignores.
        work = [("POST", "/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1}),
                ("POST", "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}),
                ("GET", "/v1/models", None),
                ("POST", "/tokenize", {"model": "m", "prompt": "x"}),
                ("POST", "/detokenize", {"model": "m", "tokens": [1, 2]}),
                ("POST", "//tokenize", {"model": "m", "prompt": "x"}),
                ("POST", "/detokenize/", {"model": "m", "tokens": [1, 2]}),
                ("POST", "//v1//completions", {"model": "m", "prompt": "x", "max_tokens": 1})]
        for method, path, body in work:
            data = None if body is None else json.dumps(body).encode()
            status, _, text = request(method, s.base_url + path, data=data)
            assert status == 401, (path, status)
            assert json.loads(text)["error"]["code"] == 401, (path, text)
            assert request(method, s.base_url + path, data=data, headers={"Authorization": "Bearer wrong"})[0] == 401, path
        for method, path, body in work[:5]:
            data = None if body is None else json.dumps(body).encode()
            assert request(method, s.base_url + path, data=data, headers={"Authorization": "Bearer from-env"})[0] == 200, path
        assert s.get("/health")[0] == 200 and s.get("/metrics")[0] == 200
        assert "from-env" not in s.log_text()
    finally:
        s.stop()
    s = ServeProcess(pagoda, small_model, free_port(), ["--served-model-name", "m", "--api-key", "k", "--api-key-all-routes"])
    try:
        key = {"Authorization": "Bearer k"}
        deadline = time.monotonic() + 120
        while True:
            try:
                if request("GET", s.base_url + "/health", headers=key, timeout=2)[0] == 200:
                    break
            except OSError:
                pass  # not listening yet
            assert s.proc.poll() is None and time.monotonic() < deadline, s.log_text()
            time.sleep(0.1)
        for path in ["/health", "/metrics", "/load", "/version", "/v1/models"]:
            assert s.get(path)[0] == 401, path
            assert request("GET", s.base_url + path, headers=key)[0] == 200, path
    finally:
        s.stop()


def test_503_while_the_engine_is_starting(pagoda, small_model, tmp_path):
    """The port opens before the engines are up; until then /health and the routes that need the engine answer 503
    with OpenAI error JSON. A head waiting for a rank that never joins holds the starting phase open (such a head
    needs the deployment's secret: here from a file)."""
    port = free_port()
    secret = tmp_path / "secret"
    secret.write_text("e2e-starting-secret-0123\n")
    env = dict(os.environ, VLLM_ENGINE_READY_TIMEOUT_S="60")
    env.pop("PAGODA_INTERNAL_SECRET", None)
    s = ServeProcess(pagoda, small_model, port, [
        "--served-model-name", "m", "--max-model-len", "256", "--data-parallel-size", "2", "--data-parallel-size-local", "1",
        "--data-parallel-address", "127.0.0.1", "--data-parallel-rpc-port", str(free_port()),
        "--internal-secret-file", str(secret)], env=env)
    try:
        status, _, body = s.first_answer("/health", timeout=60)
        assert status == 503, body
        error = json.loads(body)["error"]
        assert error["code"] == 503 and "starting" in error["message"], error
        completion = {"model": "m", "prompt": "x", "max_tokens": 1}
        for method, path, data in [("POST", "/v1/completions", completion), ("GET", "/v1/models", None),
                                   ("POST", "/tokenize", {"model": "m", "prompt": "x"})]:
            status, _, body = request(method, s.base_url + path, data=None if data is None else json.dumps(data).encode())
            assert status == 503, (path, body)
            assert json.loads(body)["error"]["code"] == 503, (path, body)
        assert s.get("/metrics")[0] == 200
        assert s.proc.poll() is None
    finally:
        s.stop()


def test_a_plain_server_answers_503_then_200_never_anything_else(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(), ["--served-model-name", "m", "--max-model-len", "256"])
    seen = []
    try:
        deadline = time.monotonic() + 180
        while not seen or seen[-1] != 200:
            assert s.proc.poll() is None and time.monotonic() < deadline, s.log_text()[-2000:]
            try:
                seen.append(s.get("/health", timeout=2)[0])
            except OSError:
                pass  # not listening yet
            time.sleep(0.02)
        assert set(seen) <= {503, 200}, seen
        assert openai.OpenAI(base_url=s.base_url + "/v1", api_key="x", max_retries=0, timeout=60).completions.create(
            model="m", prompt="hi", max_tokens=2).usage.completion_tokens == 2
    finally:
        s.stop()
