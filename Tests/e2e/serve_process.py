"""Start and stop real `pagoda serve` processes for end-to-end tests.

A ServeProcess runs `pagoda serve MODEL --host 127.0.0.1 --port P ...` in its own process group
(so its engine-core child dies with it), logs to a file, waits until /health answers, and is
always killed by `stop()` (use it from a fixture finalizer).
"""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request


class ServeProcess:
    def __init__(self, binary, model, port, extra_args=(), env=None):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"pagoda-serve-{port}-", suffix=".log", delete=False)
        args = [binary, "serve"] + ([model] if model else []) + ["--host", "127.0.0.1", "--port", str(port)] + list(extra_args)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=env)

    def wait_healthy(self, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pagoda serve exited with {self.proc.returncode} before becoming healthy:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"pagoda serve not healthy within {timeout} s:\n{self.log_text()}")

    def log_text(self):
        self.log.flush()
        with open(self.log.name, "r", errors="replace") as f:
            return f.read()

    def engine_core_pids(self):
        """Pids of this server's `pagoda engine-core` children (from /proc)."""
        return child_pids(self.proc.pid, b"engine-core")

    def get(self, path, timeout=10):
        return request("GET", self.base_url + path, timeout=timeout)

    def first_answer(self, path, timeout=60):
        """(status, headers, body) of the first GET of `path` the server answers, once its port opens."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.get(path, timeout=2)
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, self.log_text()[-2000:]
                time.sleep(0.05)

    def post(self, path, body, headers=None, timeout=30):
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        return request("POST", self.base_url + path, data=data, headers=headers, timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        # The engine core runs in the same process group; make sure nothing is left.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


def request(method, url, data=None, headers=None, timeout=10):
    """(status, headers, body bytes) for one HTTP request; HTTP errors are returned, not raised."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def child_pids(pid, marker):
    """Sorted pids of `pid`'s child processes whose command line holds the argument `marker` (bytes)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if ppid == pid and marker in cmd:
            found.append(int(entry))
    return sorted(found)


class HeadlessNode:
    """`pagoda serve MODEL --headless ARGS` behind a launch `prefix` (e.g. `ip netns exec NS`, or nothing), in its
    own process group, logging to a file."""

    def __init__(self, pagoda, model, prefix, args):
        self.log = tempfile.NamedTemporaryFile(prefix="pagoda-headless-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([*prefix, pagoda, "serve", model, "--headless", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def log_text(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """The node dies at once: SIGKILL to its serve process, its engine cores (their own process groups) and
        its process group."""
        for pid in [*child_pids(self.proc.pid, b"engine-core"), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                pass
        self.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


def openai_client(s, timeout=60):
    """The official client against server `s` (served model name "m"), without retries."""
    import openai

    return openai.OpenAI(base_url=s.base_url + "/v1", api_key="none", timeout=timeout, max_retries=0)


def greedy(s, prompts, max_tokens=12, timeout=60):
    """Greedy completions of `prompts` from `s`, one request each, in order."""
    c = openai_client(s, timeout)
    return [c.completions.create(model="m", prompt=p, max_tokens=max_tokens, temperature=0).choices[0].text for p in prompts]


def greedy_once(pagoda, model, port, args, prompts, timeout=180):
    """The greedy answers to `prompts` of a server started just for them (the reference a deployment must equal)."""
    s = ServeProcess(pagoda, model, port, args)
    try:
        s.wait_healthy(timeout=timeout)
        return greedy(s, prompts)
    finally:
        s.stop()


def stream_outcome(client, prompt, max_tokens):
    """'ok' for a streamed completion that ends well, else 'error after N chunks' (a request lost before its
    first token reads 'error after 0')."""
    import openai

    chunks = 0
    try:
        out = client.completions.create(model="m", prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True)
        for ch in out:
            if ch.choices and ch.choices[0].text:
                chunks += 1
        return "ok"
    except openai.APIError:
        return f"error after {chunks}"


def load(s):
    """The server's /load document."""
    return json.loads(s.get("/load")[2])


def metric(s, name, **labels):
    """Sum of the /metrics samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in s.get("/metrics")[2].decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls `predicate` until it holds; an AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")
