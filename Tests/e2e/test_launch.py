"""`pagoda launch`: starts the ranks, prefixes their logs, waits for health, prints the proxy command, and
stops them all — on SIGTERM, when one dies, and (via the parent-death signal) when it is killed itself.
These run the launcher over the fake backend (hidden --serve-command); test_launch_serve.py uses `pagoda serve`."""
import os
import re
import signal
import socket
import sys
import time

import openai
import pytest

from router_harness import FAKE_BACKEND, Proc, free_port_range, start_proxy


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a dead parent's reaper) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what()
        time.sleep(0.05)


def launch(pagoda, tmp_path, ranks, extra=(), serve_extra=()):
    start = free_port_range(ranks)
    args = [pagoda, "launch", "--dp-size", str(ranks), "--host", "127.0.0.1", "--start-port", str(start),
            "--serve-command", f"{sys.executable} {FAKE_BACKEND}", "--shutdown-timeout", "5", *extra]
    if serve_extra:
        args += ["--", *serve_extra]
    return Proc(args, tmp_path, f"launch-{start}"), start


def rank_pids(output: str) -> list:
    m = re.search(r"started \d+ rank\(s\): (.*)", output)
    return [int(p) for p in re.findall(r"pid (\d+)", m.group(1))] if m else []


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()


def test_two_ranks_start_answer_through_the_proxy_and_stop_cleanly(pagoda, tmp_path, procs):
    launcher, start = launch(pagoda, tmp_path, 2)
    procs.append(launcher)
    wait_for(lambda: "Front them with" in launcher.output() or not launcher.alive(), 60, launcher.output)
    out = launcher.output()
    assert launcher.alive(), out
    assert "[rank 0] fake backend rank 0/2 listening on 127.0.0.1:%d" % start in out
    assert "[rank 1] fake backend rank 1/2 listening on 127.0.0.1:%d" % (start + 1) in out
    command = re.search(r"pagoda proxy .*", out).group(0)
    assert f"--dp-ports {start} {start + 1}" in command and "--dp-hosts 127.0.0.1 127.0.0.1" in command
    pids = rank_pids(out)
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)

    proxy, pport = start_proxy(pagoda, tmp_path, [start, start + 1])
    procs.append(proxy)
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{pport}/v1", api_key="none", max_retries=0, timeout=30)
    for i in range(4):
        assert c.completions.create(model="m", prompt=f"hello {i}", max_tokens=4).choices[0].text

    launcher.send(signal.SIGTERM)
    assert launcher.popen.wait(timeout=20) == 0, launcher.output()
    assert "stopping all ranks" in launcher.output()
    assert not any(pid_alive(p) for p in pids)


def test_a_dying_rank_stops_the_others_and_says_which(pagoda, tmp_path, procs):
    launcher, start = launch(pagoda, tmp_path, 2, serve_extra=["--die-after", "2"])
    procs.append(launcher)
    assert launcher.popen.wait(timeout=30) == 1, launcher.output()
    out = launcher.output()
    assert re.search(r"rank [01] \(pid \d+, port \d+\) exited with status 3; stopping the other ranks", out), out
    assert not any(pid_alive(p) for p in rank_pids(out))


def test_taken_port_is_refused_before_anything_starts(pagoda, tmp_path, procs):
    start = free_port_range(2)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", start + 1))
    blocker.listen(1)
    try:
        launcher = Proc([pagoda, "launch", "--dp-size", "2", "--host", "127.0.0.1", "--start-port", str(start),
                         "--serve-command", f"{sys.executable} {FAKE_BACKEND}"], tmp_path, "launch-taken")
        procs.append(launcher)
        assert launcher.popen.wait(timeout=20) != 0
        out = launcher.output()
        assert f"port(s) already taken on 127.0.0.1: {start + 1} (rank 1" in out, out
        assert "started" not in out
    finally:
        blocker.close()


def test_killed_launcher_leaves_no_ranks_behind(pagoda, tmp_path, procs):
    launcher, _ = launch(pagoda, tmp_path, 2)
    procs.append(launcher)
    wait_for(lambda: "Front them with" in launcher.output() or not launcher.alive(), 60, launcher.output)
    pids = rank_pids(launcher.output())
    assert len(pids) == 2
    try:
        launcher.stop(signal.SIGKILL, group=False)  # no chance to clean up: the kernel's parent-death signal must do it
        wait_for(lambda: not any(pid_alive(p) for p in pids), 10, lambda: f"ranks {pids} outlived the launcher")
    finally:
        for p in pids:
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)


def test_bad_flags_fail_with_one_line(pagoda):
    import subprocess
    for args, needle in [(["--dp-size", "0"], "--dp-size"), (["--dp-size", "2", "--dp-rank-start", "2"], "--dp-rank-start"),
                         (["--dp-size", "2", "--", "--port", "1"], "--port")]:
        r = subprocess.run([pagoda, "launch", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and needle in r.stderr, r.stderr
