"""Pagoda on a real Ray cluster (Ray from PyPI, pinned in requirements.txt): a Ray head on this machine and a
second Ray node in a network namespace made here (prefix `rayn`), joined by a veth pair with our own 10.x
addresses, so the two nodes have distinct addresses; a custom resource (`pagoda_dev`, one per node) stands in
for a device. Ray's files live under a temporary folder of ours, and every Ray process is stopped at the end.
The head's health checks run every second (Ray's default notices a dead node after 30 s or more).

`--data-parallel-backend ray` places DP=2 across the two nodes (greedy outputs equal DP=1, both ranks serve),
`--distributed-executor-backend ray` places TP=2 (and PP=2) across them (tokens equal one process; the worker on
the second node reaches its engine only over TCP), a killed rank actor or a whole dead node is reported with its
rank while the other keeps serving, and after every test no Pagoda placement group or actor is left in the
cluster. The node-death test kills the second node: it runs last."""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import CONFORMANCE, ROOT, free_port
from netns import ip, linked_namespace
from serve_process import ServeProcess, greedy, load, metric, openai_client, stream_outcome, wait_until

MODEL = str(CONFORMANCE / "models" / "tiny-llama3")
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):"]
COMMON = ["--dtype", "float32", "--threads", "1", "--max-model-len", "512", "--served-model-name", "m", "--disable-log-requests"]
HELPER = str(ROOT / "python" / "pagoda_ray.py")
# The GCS checks every node each second and counts it dead after 4 failed checks of 2 s at most.
HEALTH_CHECKS = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
                 "RAY_health_check_timeout_ms": "2000", "RAY_health_check_failure_threshold": "4"}
RAY_SETTINGS = ["--num-cpus", "1", "--resources", json.dumps({"pagoda_dev": 1}), "--object-store-memory", str(80 * 1024 * 1024),
                "--disable-usage-stats"]


def ray_cli():
    return os.path.join(os.path.dirname(sys.executable), "ray") if os.path.exists(
        os.path.join(os.path.dirname(sys.executable), "ray")) else shutil.which("ray")


class RayCluster:
    """Two Ray nodes: the head here at SUBNET.1, one in namespace `ns` at SUBNET.2."""

    def __init__(self, ns, head_ip, node_ip, tmp):
        self.ns, self.head_ip, self.node_ip, self.tmp = ns, head_ip, node_ip, tmp
        self.address = None

    def start(self):
        ray = ray_cli()
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **HEALTH_CHECKS)
        head = subprocess.run([ray, "start", "--head", "--node-ip-address", self.head_ip, "--port", str(free_port()),
                               "--include-dashboard=false", "--temp-dir", f"{self.tmp}/head", *RAY_SETTINGS],
                              capture_output=True, text=True, timeout=180, env=env)
        if head.returncode != 0:
            raise RuntimeError(f"ray start --head failed:\n{head.stdout}\n{head.stderr}")
        m = re.search(r"ray start --address='([^']+)'", head.stdout + head.stderr)
        self.address = m.group(1)
        node = subprocess.run(["ip", "netns", "exec", self.ns, ray, "start", "--address", self.address, "--node-ip-address",
                               self.node_ip, "--temp-dir", f"{self.tmp}/node1", *RAY_SETTINGS],
                              capture_output=True, text=True, timeout=180, env=env)
        if node.returncode != 0:
            raise RuntimeError(f"ray start --address failed:\n{node.stdout}\n{node.stderr}")

    def env(self, **extra):
        return dict(os.environ, RAY_ADDRESS=self.address, PAGODA_RAY_BUNDLE_RESOURCES=json.dumps({"pagoda_dev": 1}), **extra)

    def query(self, code, timeout=120):
        """Runs `code` in a Ray driver connected to the cluster (namespace pagoda); returns its JSON output."""
        prog = ("import json, ray\nray.init(address=%r, namespace='pagoda', log_to_driver=False, logging_level='ERROR')\n"
                % self.address) + code
        r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1])

    def leftovers(self):
        """Pagoda's placement groups that are not removed and its actors that are alive."""
        return self.query(
            "from ray.util import placement_group_table\n"
            "from ray._private.state import actors\n"
            "pgs = [v['name'] for v in placement_group_table().values() if v['name'].startswith('pagoda-') and v['state'] != 'REMOVED']\n"
            "alive = [a['Name'] for a in actors().values() if a['State'] == 'ALIVE' and a['Name'].startswith('pagoda-')]\n"
            "print(json.dumps({'placement_groups': pgs, 'actors': alive}))\n")

    def processes(self):
        """Pids of this cluster's processes: their command line or an open file names our temporary folder (Ray's
        agents rename themselves, e.g. `ray::DashboardAgent`, but keep their log files under it open)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    mine = self.tmp.encode() in f.read()
                if not mine:
                    fds = f"/proc/{entry}/fd"
                    mine = any(self.tmp in os.readlink(f"{fds}/{fd}") for fd in os.listdir(fds))
            except OSError:
                continue
            if mine:
                pids.append(int(entry))
        return pids

    def stop(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster():
    tag = os.getpid() % 100000
    subnet = f"10.198.{tag % 200 + 20}"
    with linked_namespace("ray", subnet) as (ns, _, _):
        tmp = tempfile.mkdtemp(prefix="ray-pagoda-", dir="/tmp")
        c = RayCluster(ns, f"{subnet}.1", f"{subnet}.2", tmp)
        try:
            c.start()
            yield c
        finally:
            c.stop()
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def clean(cluster):
    """Checks after the test that the cluster holds no Pagoda placement group or actor."""
    yield cluster
    deadline = time.monotonic() + 30
    while True:
        left = cluster.leftovers()
        if left == {"placement_groups": [], "actors": []} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert left == {"placement_groups": [], "actors": []}


def stop(s):
    """Stops the server (SIGTERM: it removes its placement groups and actors) and returns its log."""
    s.stop()
    with open(s.log.name, errors="replace") as f:
        return f.read()


@pytest.fixture(scope="module")
def reference(pagoda):
    s = ServeProcess(pagoda, MODEL, free_port(), COMMON)
    try:
        s.wait_healthy(timeout=180)
        return greedy(s, PROMPTS, timeout=120)
    finally:
        s.stop()


def test_dp2_placed_by_ray_across_two_nodes_answers_like_dp1(pagoda, reference, clean):
    c = clean
    s = ServeProcess(pagoda, MODEL, free_port(),
                     [*COMMON, "--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-backend", "ray"],
                     env=c.env())
    try:
        s.wait_healthy(timeout=300)
        # Each prompt twice: equal loads take turns, so both ranks serve.
        assert greedy(s, PROMPTS + PROMPTS, timeout=120) == reference + reference
        engines = load(s)["engines"]
        assert [e["rank"] for e in engines] == [0, 1] and all(e["up"] for e in engines)
        for r in (0, 1):
            assert metric(s, "vllm:request_success_total", engine=r) > 0, f"rank {r} served nothing"
        log = s.log_text()
        # strict with one local rank: rank 0 on the head node, rank 1 on the namespace's node.
        assert f"data-parallel rank 0: engine core started by Ray on {c.head_ip}" in log, log
        assert f"data-parallel rank 1: engine core started by Ray on {c.node_ip}" in log, log
        assert re.search(rf"data-parallel rank 1 joined from {re.escape(c.node_ip)}", log), log
        assert c.leftovers()["placement_groups"] != []  # held while serving
    finally:
        log = stop(s)
    assert "Ray: 2 actor(s) stopped, 2 placement group(s) removed" in log, log
    # `ray status` shows the devices free again.
    status = subprocess.run([ray_cli(), "status", "--address", c.address], capture_output=True, text=True, timeout=120)
    assert " 0.0/2.0 pagoda_dev" in status.stdout, status.stdout + status.stderr


@pytest.mark.parametrize("layout", [["-tp", "2"], ["-pp", "2"]], ids=["tp2", "pp2"])
def test_tp2_and_pp2_with_the_ray_executor_across_two_nodes_match_one_process(pagoda, reference, clean, layout):
    c = clean
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, *layout, "--distributed-executor-backend", "ray"], env=c.env())
    try:
        s.wait_healthy(timeout=300)
        assert greedy(s, PROMPTS, timeout=120) == reference
        log = s.log_text()
        # One worker per node: the second one's bundle is on the namespace's node.
        assert f"on {c.head_ip} (bundle" in log and f"on {c.node_ip} (bundle" in log, log
        # That worker reaches its engine over TCP only: its command line names the engine's TCP address on the head
        # node, it holds an established TCP connection to it, it lives in the other network namespace, and the
        # engine saw it connect from the namespace's address (after the secret's handshake).
        pid = int(re.search(rf"pagoda_ray exec: pid (\d+) on {re.escape(c.node_ip)} \(bundle", log).group(1))
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        assert b"--engine-address" in argv and b"--engine-socket" not in argv, argv
        engine = argv[argv.index(b"--engine-address") + 1].decode()
        assert engine.startswith(f"tcp://{c.head_ip}:"), engine
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert tcp_peers(pid) & {engine[len("tcp://"):]}, (tcp_peers(pid), engine)
        assert re.search(rf"worker rank \d \(pid {pid}\) connected over TCP from {re.escape(c.node_ip)}:", log), log
    finally:
        stop(s)


def tcp_peers(pid):
    """`ip:port` of the established TCP connections of process `pid` (its sockets, read from its namespace's table)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    peers = set()
    with open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # ESTABLISHED, one of its sockets
                addr, port = fields[2].split(":")
                quad = ".".join(str(b) for b in reversed(bytes.fromhex(addr)))
                peers.add(f"{quad}:{int(port, 16)}")
    return peers


def serve_dp2_one_rank_per_node(pagoda, c):
    """DP=2 placed by Ray, one rank per node, requests routed by load (the rank-loss tests)."""
    return ServeProcess(pagoda, MODEL, free_port(),
                        [*COMMON, "--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-backend",
                         "ray", "--data-parallel-routing", "load"], env=c.env())


def test_killing_the_actor_of_one_dp_rank_mid_load(pagoda, clean):
    c = clean
    s = serve_dp2_one_rank_per_node(pagoda, c)
    try:
        s.wait_healthy(timeout=300)
        cl = openai_client(s, 120)

        def stream(i):
            return stream_outcome(cl, f"story {i}:", 64)

        job = re.search(r"placement group (pagoda-serve\d+)-dp1", s.log_text()).group(1)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(stream, i) for i in range(16)]
            wait_until(lambda: all(e["num_requests_running"] > 0 for e in load(s)["engines"]), 120, "both ranks run requests")
            killed = c.query(f"ray.kill(ray.get_actor('{job}-dp1-engine'), no_restart=True)\nprint(json.dumps(True))\n")
            assert killed
            results = [f.result(timeout=240) for f in futures]
        print("after killing rank 1's actor:", {r: results.count(r) for r in set(results)})
        # Nothing lost that had not started: every request completed, or failed after streaming tokens.
        assert all(r == "ok" or (r.startswith("error after ") and r != "error after 0") for r in results), results
        wait_until(lambda: load(s)["engines"][1]["up"] is False, 30, "rank 1 is down")
        status, _, body = s.get("/health")
        assert status == 200 and json.loads(body) == {"status": "degraded", "down_ranks": [1]}
        log = s.log_text()
        assert "data-parallel rank 1 (Ray actor) lost" in log, log
        assert re.search(r"data-parallel rank 1: Ray reports that its Ray actor died", log), log
        # Rank 0 keeps answering; Ray restarted nothing.
        for i in range(4):
            assert cl.completions.create(model="m", prompt=f"after {i}", max_tokens=4, temperature=0).choices[0].finish_reason == "length"
        assert [e["up"] for e in load(s)["engines"]] == [True, False]
    finally:
        stop(s)


def test_an_unsatisfiable_placement_is_a_clear_error_after_a_bounded_wait(pagoda, clean):
    c = clean
    started = time.monotonic()
    r = subprocess.run([pagoda, "serve", MODEL, "--port", str(free_port()), *COMMON, "--data-parallel-size", "3",
                        "--data-parallel-size-local", "1", "--data-parallel-backend", "ray"],
                       capture_output=True, text=True, timeout=180, env=c.env(PAGODA_RAY_PLACEMENT_TIMEOUT_S="5"))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "cannot place data-parallel rank(s) 2..2" in out and "{pagoda_dev: 1}" in out, out
    assert time.monotonic() - started < 120


def test_the_helper_session_protocol_reports_exits_and_cleans_up(clean):
    """The helper alone: place two ranks (one per node), start a process in each, see one exit reported with its
    rank, then shut down: every placement group and actor is gone."""
    c = clean
    p = subprocess.Popen([sys.executable, HELPER, "session"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env=c.env())

    def send(o):
        p.stdin.write(json.dumps(o) + "\n")
        p.stdin.flush()

    def event():
        return json.loads(p.stdout.readline())

    try:
        hello = event()
        assert hello["event"] == "connected" and hello["head_ip"] == c.head_ip
        assert sorted(n["ip"] for n in hello["nodes"]) == sorted([c.head_ip, c.node_ip])
        send({"op": "place", "job": "t", "ranks": 2, "local_ranks": 1, "bundles_per_rank": 1, "bundle": {"pagoda_dev": 1},
              "strategy": "strict", "timeout_s": 30})
        placed = event()
        assert placed["event"] == "placed"
        assert [r["node_ips"] for r in placed["ranks"]] == [[c.head_ip], [c.node_ip]]
        send({"op": "start", "job": "t", "rank": 0, "argv": ["sleep", "60"]})
        assert event()["event"] == "started"
        send({"op": "start", "job": "t", "rank": 1, "argv": ["sh", "-c", "exit 3"]})
        started = event()
        assert started["event"] == "started" and started["node_ip"] == c.node_ip
        assert event() == {"event": "exited", "rank": 1, "reason": "its process exited with status 3"}
        send({"op": "frobnicate"})
        assert event() == {"event": "error", "message": "unknown op 'frobnicate'"}
        send({"op": "shutdown"})
        assert event() == {"event": "stopped", "actors": 2, "placement_groups": 2}
        assert p.wait(timeout=60) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_span_places_one_tp2_rank_over_both_nodes(pagoda, reference, clean):
    """VLLM_RAY_DP_PACK_STRATEGY=span: a rank larger than a node (TP=2, one device per node) spans both; its engine
    core places its workers in its own placement group's bundles."""
    c = clean
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, "-tp", "2", "--data-parallel-backend", "ray"],
                     env=c.env(VLLM_RAY_DP_PACK_STRATEGY="span"))
    try:
        s.wait_healthy(timeout=300)
        assert greedy(s, PROMPTS, timeout=120) == reference
        log = s.log_text()
        assert re.search(rf"bundles on ({re.escape(c.head_ip)}, {re.escape(c.node_ip)}|{re.escape(c.node_ip)}, {re.escape(c.head_ip)})", log), log
    finally:
        log = stop(s)
    assert "Ray: 1 actor(s) stopped, 1 placement group(s) removed" in log, log


@pytest.mark.parametrize("args, env, needle", [
    (["--data-parallel-backend", "ray", "--headless"], {}, "--data-parallel-backend ray cannot be used with --headless"),
    (["--data-parallel-backend", "ray", "--data-parallel-rank", "0"], {}, "cannot be used with --data-parallel-rank"),
    (["--data-parallel-backend", "slurm"], {}, "invalid --data-parallel-backend slurm: must be mp or ray"),
    (["--data-parallel-backend", "ray"], {"VLLM_RAY_DP_PACK_STRATEGY": "spread"},
     'invalid VLLM_RAY_DP_PACK_STRATEGY "spread": must be one of strict, fill, span'),
    (["--data-parallel-backend", "ray"], {"PAGODA_RAY_BUNDLE_RESOURCES": "[1]"}, "invalid PAGODA_RAY_BUNDLE_RESOURCES"),
    (["-tp", "2", "--distributed-executor-backend", "slurm"], {}, "(expected uni, mp or ray)"),
], ids=["headless", "rank", "backend", "strategy", "bundle", "executor"])
def test_ray_flags_are_checked_at_the_command_line(pagoda, args, env, needle):
    r = subprocess.run([pagoda, "serve", MODEL, "--port", str(free_port()), *COMMON, "--data-parallel-size", "2", *args],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, **env))
    assert r.returncode != 0 and needle in r.stdout + r.stderr, r.stdout + r.stderr


def test_a_dead_node_mid_load_is_reported_with_its_rank(pagoda, clean):
    """The second node dies whole (its raylet and every process in its namespace killed by pid) while DP=2 runs
    under load: rank 1 is reported lost with its rank, Ray reports its actor dead within the health-check bound,
    rank 0 keeps answering, no request is lost that had not started, and after the shutdown no Pagoda placement
    group or actor is left. Runs last: the cluster has one node afterwards."""
    c = clean
    s = serve_dp2_one_rank_per_node(pagoda, c)
    try:
        s.wait_healthy(timeout=300)
        cl = openai_client(s, 120)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(stream_outcome, cl, f"story {i}:", 64) for i in range(16)]
            wait_until(lambda: all(e["num_requests_running"] > 0 for e in load(s)["engines"]), 120, "both ranks run requests")
            victims = [int(p) for p in ip("netns", "pids", c.ns).stdout.split()]
            assert victims, "no process in the second node's namespace"
            killed_at = time.monotonic()
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            results = [f.result(timeout=240) for f in futures]
        print("after killing the second node:", {r: results.count(r) for r in set(results)})
        assert all(r == "ok" or (r.startswith("error after ") and r != "error after 0") for r in results), results
        wait_until(lambda: load(s)["engines"][1]["up"] is False, 30, "rank 1 is down")
        status, _, body = s.get("/health")
        assert status == 200 and json.loads(body) == {"status": "degraded", "down_ranks": [1]}
        # Ray's own report comes after its health checks give up on the node: seconds, not minutes.
        wait_until(lambda: re.search(r"data-parallel rank 1: Ray reports that its Ray actor died", s.log_text()), 60,
                   "Ray reports rank 1's actor dead")
        print(f"Ray reported the dead node's actor {time.monotonic() - killed_at:.1f} s after the kill")
        log = s.log_text()
        assert "data-parallel rank 1 (Ray actor) lost" in log, log
        assert "data-parallel rank 0: Ray reports" not in log, log
        for i in range(4):
            assert cl.completions.create(model="m", prompt=f"after {i}", max_tokens=4, temperature=0).choices[0].finish_reason == "length"
        assert [e["up"] for e in load(s)["engines"]] == [True, False]
    finally:
        log = stop(s)
    assert "Ray: 2 actor(s) stopped, 2 placement group(s) removed" in log, log
    dead = c.query("print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if not n['Alive']]))\n")
    assert c.node_ip in dead, dead
