"""Process helpers for the proxy and launcher end-to-end tests: start, wait, scrape, stop."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
FAKE_BACKEND = str(HERE / "fake_backend.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_range(n: int) -> int:
    """A start port whose n consecutive ports are free right now."""
    for _ in range(200):
        start = free_port()
        if start + n > 65535:
            continue
        socks = []
        try:
            for p in range(start, start + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


class Proc:
    """A child process whose output goes to a log file; killed (with its group) at stop()."""

    def __init__(self, args, log_dir: pathlib.Path, name: str, env=None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def stop(self, sig=signal.SIGKILL, group=True):
        if self.alive():
            try:
                if group:
                    os.killpg(self.popen.pid, sig)
                else:
                    self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.log.close()


def wait_http(url: str, timeout: float = 30, proc: Proc = None) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.output()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - any failure means not ready yet
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}\n{proc.output() if proc else ''}")


def start_fake(log_dir, rank=0, size=1, token_delay=0.002, inject="", port=None) -> tuple:
    port = port or free_port()
    args = [sys.executable, FAKE_BACKEND, "--host", "127.0.0.1", "--port", str(port),
            "--data-parallel-size", str(size), "--data-parallel-rank", str(rank), "--token-delay", str(token_delay)]
    if inject:
        args += ["--inject", inject]
    proc = Proc(args, log_dir, f"fake{rank}-{port}")
    wait_http(f"http://127.0.0.1:{port}/health", 20, proc)
    return proc, port


def start_proxy(pagoda, log_dir, ports, policy=None, extra=()) -> tuple:
    port = free_port()
    args = [pagoda, "proxy", "--host", "127.0.0.1", "--port", str(port),
            "--dp-hosts", *["127.0.0.1"] * len(ports), "--dp-ports", *map(str, ports),
            "--health-check-interval", "0.2", "--health-check-timeout", "1"]
    if policy:
        args += ["--policy", policy]
    args += list(extra)
    proc = Proc(args, log_dir, f"proxy-{port}")
    wait_http(f"http://127.0.0.1:{port}/healthcheck", 30, proc)
    return proc, port


def metrics(port: int) -> dict:
    """{(metric, backend or None): value} from the proxy's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^(\w+)(?:\{backend="([^"]*)"[^}]*\})? (\S+)$', line)
        assert m, f"bad metrics line: {line!r}"
        out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def per_backend(m: dict, name: str, ports) -> list:
    return [m[(name, f"127.0.0.1:{p}")] for p in ports]


class Reply:
    def __init__(self, status, headers, body: bytes):
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers}
        self.content = body

    @property
    def text(self):
        return self.content.decode(errors="replace")

    def json(self):
        import json
        return json.loads(self.content)


def request(port, method, path, body=None, headers=None, timeout=10) -> Reply:
    """One HTTP request with the standard library (bytes, or a JSON-able body)."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def stream_events(port, path, body, headers=None, timeout=10, stop_after=None):
    """POSTs a streaming request; returns (status, headers, the `data:` lines), leaving after `stop_after` events."""
    import http.client
    import json
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request("POST", path, body=json.dumps(body).encode(), headers=hdrs)
        r = conn.getresponse()
        events = []
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode().rstrip("\r\n")
            if line.startswith("data: "):
                events.append(line)
                if stop_after is not None and len(events) >= stop_after:
                    break
        return r.status, {k.lower(): v for k, v in r.getheaders()}, events
    finally:
        conn.close()


# Bounds for every test server: a small KV cache, a short context, one numeric thread (2 cores, several servers).
SERVE_LIMITS = ["--kv-cache-memory-bytes", str(32 << 20), "--max-model-len", "512", "--threads", "1"]


def start_serve(pagoda, log_dir, model, rank=0, size=1, timeout=180) -> tuple:
    """A real `pagoda serve` on a free loopback port, ready (GET /health 200)."""
    port = free_port()
    args = [pagoda, "serve", model, "--host", "127.0.0.1", "--port", str(port), *SERVE_LIMITS]
    if size > 1:
        args += ["--data-parallel-size", str(size), "--data-parallel-rank", str(rank)]
    proc = Proc(args, log_dir, f"serve{rank}-{port}")
    wait_http(f"http://127.0.0.1:{port}/health", timeout, proc)
    return proc, port
