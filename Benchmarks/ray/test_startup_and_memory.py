"""Measurement (not run in CI): DP=2 start-up time to first token with --data-parallel-backend ray versus the
multiprocess backend, and the memory (RSS) Ray's own processes take on each node, idle and while serving, on the
two-node cluster of Tests/e2e/test_ray.py. Run from Tests/e2e:
    PYTHONPATH=. python3 -m pytest -s -q -p no:cacheprovider ../../Benchmarks/ray/test_startup_and_memory.py"""
import os, statistics, time
from conftest import free_port, pagoda  # noqa: F401
from serve_process import ServeProcess, openai_client
from test_ray import COMMON, MODEL, cluster  # noqa: F401

def ttft(pagoda, args, env=None):
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, *args], env=env)
    start = time.monotonic()
    try:
        s.wait_healthy(timeout=400)
        openai_client(s, 120).completions.create(model="m", prompt="Hello", max_tokens=1, temperature=0)
        return time.monotonic() - start
    finally:
        s.stop()

def rss_by_name(pids):
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                kb = int([l for l in f if l.startswith("VmRSS")][0].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = [c.decode() for c in f.read().split(b"\0") if c]
            prog = next((os.path.basename(c) for c in cmd if c.endswith(".py") or "/ray/core/src/" in c), os.path.basename(cmd[0]))
            out[prog] = out.get(prog, 0) + kb
        except (OSError, IndexError, StopIteration):
            pass
    return out

def on_second_node(pid, tmp):
    """Whether a cluster process belongs to the second node (its command line or open files are under node1/)."""
    mark = f"{tmp}/node1"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if mark.encode() in f.read():
                return True
        return any(mark in os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False

def test_measure(pagoda, cluster):
    head, node = [], []
    for pid in cluster.processes():
        (node if on_second_node(pid, cluster.tmp) else head).append(pid)
    for name, pids in (("head node", head), ("second node", node)):
        r = rss_by_name(pids)
        print(f"Ray RSS on the {name} (idle): total {sum(r.values()) / 1024:.0f} MiB:", {k: f"{v / 1024:.0f} MiB" for k, v in sorted(r.items())})
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, "--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-backend", "ray"], env=cluster.env())
    try:
        s.wait_healthy(timeout=400)
        head, node = [], []
        for pid in cluster.processes():
            (node if on_second_node(pid, cluster.tmp) else head).append(pid)
        helper = [int(e) for e in os.listdir("/proc") if e.isdigit() and b"pagoda_ray.py" in open(f"/proc/{e}/cmdline", "rb").read()]
        for name, pids in (("head node", head), ("second node", node), ("helper", helper)):
            r = rss_by_name(pids)
            print(f"Ray RSS while serving DP=2, {name}: total {sum(r.values()) / 1024:.0f} MiB:", {k: f"{v / 1024:.0f} MiB" for k, v in sorted(r.items())})
    finally:
        s.stop()
    runs = {"mp": [], "ray": []}
    for _ in range(3):
        runs["mp"].append(ttft(pagoda, ["--data-parallel-size", "2"]))
        runs["ray"].append(ttft(pagoda, ["--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-backend", "ray"], cluster.env()))
    for k, v in runs.items():
        print(f"DP=2 {k}: start-up to first token {[round(x, 1) for x in v]} s, median {statistics.median(v):.1f} s")
