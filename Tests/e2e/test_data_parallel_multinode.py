"""Multi-node data parallelism with vLLM's flags: a head node (`pagoda serve` with the API server) and a
headless node (`pagoda serve --headless`) whose engine cores join it over TCP. The headless node runs in a
network namespace made here, joined to this one by a veth pair with our own 10.x addresses, so it reaches
the head only over that link. Both of vLLM's seed layouts answer like one engine; losing the headless node
(engines killed, or the link cut) leaves the head serving on its own ranks; started again, it rejoins."""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import CONFORMANCE, deployment_secret, free_port
from netns import ip, linked_namespace
from serve_process import HeadlessNode, ServeProcess, greedy, greedy_once, load, metric, openai_client, stream_outcome, wait_until

MODEL = str(CONFORMANCE / "models" / "tiny-llama3")
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):",
           "The quick brown fox", "In the beginning"]
COMMON = ["--dtype", "float32", "--threads", "1", "--max-model-len", "512"]
# The longest a stream on a killed headless node's rank may take to end with an error (the connection closes
# at once; the bound leaves room for a loaded CI machine).
CLEAR_ERROR_S = 30


@pytest.fixture(autouse=True, scope="module")
def _deployment_secret():
    """The secret every process of these deployments shares (started separately, they cannot make one up)."""
    with deployment_secret() as s:
        yield s


@pytest.fixture
def node1():
    """A network namespace for the headless node, linked to this namespace: (namespace, head address)."""
    tag = os.getpid() % 100000
    with linked_namespace("pmn", f"10.199.{tag % 200 + 20}") as linked:
        yield linked


def start_node(pagoda, ns, args):
    """`pagoda serve --headless ...` inside the namespace."""
    return HeadlessNode(pagoda, MODEL, ["ip", "netns", "exec", ns], [*COMMON, *args])


def start_head(pagoda, args):
    s = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, "--served-model-name", "m", "--disable-log-requests", *args])
    return s


def wait_healthy(head, nodes, timeout=240):
    try:
        head.wait_healthy(timeout=timeout)
    except Exception as e:
        logs = "\n".join(n.log_text() for n in nodes)
        raise AssertionError(f"{e}\nheadless node:\n{logs}") from None


@pytest.fixture(scope="module")
def reference(pagoda):
    return greedy_once(pagoda, MODEL, free_port(), [*COMMON, "--served-model-name", "m", "--disable-log-requests"], PROMPTS)


def layout(head_addr, port, size, head_local, node_local, start_rank):
    rpc = ["--data-parallel-address", head_addr, "--data-parallel-rpc-port", str(port)]
    head = ["--data-parallel-size", str(size), "--data-parallel-size-local", str(head_local), *rpc]
    node = ["--data-parallel-size", str(size), "--data-parallel-size-local", str(node_local), *rpc]
    if start_rank:
        node += ["--data-parallel-start-rank", str(start_rank)]
    return head, node


@pytest.mark.parametrize("head_local, node_local, start_rank", [(2, 2, 2), (0, 4, None)],
                         ids=["two-ranks-per-node", "api-server-alone-on-the-head"])
def test_seed_layouts_answer_like_one_engine(pagoda, reference, node1, head_local, node_local, start_rank):
    ns, _, head_addr = node1
    head_args, node_args = layout(head_addr, free_port(), 4, head_local, node_local, start_rank)
    if head_local == 0:
        # The headless node first: its engine cores keep trying until the head listens.
        node = start_node(pagoda, ns, node_args)
        time.sleep(1)
        head = start_head(pagoda, head_args)
    else:
        head = start_head(pagoda, head_args)
        node = start_node(pagoda, ns, node_args)
    try:
        wait_healthy(head, [node])
        # Each prompt twice: equal loads take turns, so every rank serves some.
        assert greedy(head, PROMPTS + PROMPTS) == reference + reference
        engines = load(head)["engines"]
        assert [e["rank"] for e in engines] == [0, 1, 2, 3] and all(e["up"] and e["num_blocks"] > 0 for e in engines)
        for r in range(4):
            assert metric(head, "vllm:request_success_total", engine=r) > 0, f"rank {r} served nothing"
        log = head.log_text()
        for r in range(head_local, 4):
            assert re.search(rf"data-parallel rank {r} joined from {re.escape(head_addr.rsplit('.', 1)[0])}\.2", log), log
    finally:
        head.stop()
        node.stop()


def test_losing_the_headless_node_and_its_return(pagoda, node1):
    ns, _, head_addr = node1
    port = free_port()
    head_args, node_args = layout(head_addr, port, 4, 2, 2, 2)
    head = start_head(pagoda, head_args)
    node = start_node(pagoda, ns, node_args)
    try:
        wait_healthy(head, [node])
        c = openai_client(head, 60)

        def stream(i):
            return stream_outcome(c, f"story {i}:", 96), time.monotonic()

        remote_pids = [e["pid"] for e in load(head)["engines"] if e["rank"] >= 2]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(stream, i) for i in range(32)]
            wait_until(lambda: all(e["num_requests_running"] > 0 for e in load(head)["engines"] if e["rank"] >= 2), 60,
                       "the headless node's ranks run requests")
            for pid in remote_pids:
                os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            ended = [f.result(timeout=240) for f in futures]
        results = [r for r, _ in ended]
        # A killed engine's TCP connections close at once: its streams end with an error within seconds, not
        # after the heartbeat timeout. Read by Benchmarks/reliability/report.py.
        max_error_s = max([at - killed for r, at in ended if r != "ok"], default=0.0)
        print(f"RELIABILITY lost={results.count('error after 0')} max_error_s={max_error_s:.1f}")
        assert max_error_s < CLEAR_ERROR_S, (max_error_s, results)
        print("after killing the headless node's engines:", {r: results.count(r) for r in set(results)})
        # Nothing is lost that had not started: every request completed, or failed after streaming tokens.
        assert all(r == "ok" or (r.startswith("error after ") and r != "error after 0") for r in results), results
        assert results.count("ok") >= 16, results
        wait_until(lambda: head.get("/health")[2] != b"", 10, "/health reports the loss")
        status, _, body = head.get("/health")
        assert status == 200 and json.loads(body) == {"status": "degraded", "down_ranks": [2, 3]}
        assert metric(head, "pagoda:engine_up", engine="2") == 0 and metric(head, "pagoda:engine_up", engine="0") == 1
        assert [e["up"] for e in load(head)["engines"]] == [True, True, False, False]
        assert "data-parallel rank 2 (headless node) lost" in head.log_text()
        # The headless node stops with its engines (non-zero: they were killed).
        assert node.wait_exit(30) not in (None, 0), node.log_text()
        # The head serves on its own ranks.
        for i in range(4):
            assert c.completions.create(model="m", prompt=f"after {i}", max_tokens=4, temperature=0).choices[0].finish_reason == "length"

        # The same command again: ranks 2 and 3 rejoin and take requests.
        node.stop()
        node = start_node(pagoda, ns, node_args)
        wait_until(lambda: all(e["up"] for e in load(head)["engines"]), 180, "ranks 2 and 3 rejoin")
        before = [metric(head, "vllm:request_success_total", engine=r) for r in (2, 3)]
        for i in range(12):
            c.completions.create(model="m", prompt=f"again {i}", max_tokens=2, temperature=0)
        after = [metric(head, "vllm:request_success_total", engine=r) for r in (2, 3)]
        assert after[0] > before[0] and after[1] > before[1], (before, after)
        assert "data-parallel rank 2 rejoined" in head.log_text()
        assert head.get("/health")[0:3:2] == (200, b"")
    finally:
        head.stop()
        node.stop()


def test_a_cut_network_is_noticed_by_heartbeats_on_both_sides(pagoda, node1):
    ns, ns_if, head_addr = node1
    head_args, node_args = layout(head_addr, free_port(), 3, 2, 1, 2)
    beat = ["--data-parallel-heartbeat-timeout", "2"]
    head = start_head(pagoda, head_args + beat)
    node = start_node(pagoda, ns, node_args + beat)
    try:
        wait_healthy(head, [node])
        assert [e["up"] for e in load(head)["engines"]] == [True, True, True]
        ip("-n", ns, "link", "set", ns_if, "down")
        # The head gives rank 2 up after the heartbeat timeout (no FIN crosses a cut link) ...
        wait_until(lambda: [e["up"] for e in load(head)["engines"]] == [True, True, False], 30, "the head marks rank 2 down")
        assert re.search(r"data-parallel rank 2 \(headless node\) lost: .*nothing received from the peer", head.log_text())
        # ... and the headless engine gives the head up and its node exits non-zero.
        assert node.wait_exit(30) not in (None, 0), node.log_text()
        assert "nothing received from the peer" in node.log_text()
        c = openai_client(head, 60)
        assert c.completions.create(model="m", prompt="still here", max_tokens=3, temperature=0).choices[0].finish_reason == "length"
        # Link back, node started again: it rejoins.
        ip("-n", ns, "link", "set", ns_if, "up")
        node.stop()
        node = start_node(pagoda, ns, node_args + beat)
        wait_until(lambda: all(e["up"] for e in load(head)["engines"]), 180, "rank 2 rejoins")
    finally:
        head.stop()
        node.stop()


def test_the_head_names_the_ranks_that_never_join(pagoda):
    port = free_port()
    # No local rank: the head only waits (a local engine core would have to load within the short timeout too).
    r = subprocess.run([pagoda, "serve", MODEL, *COMMON, "--port", str(free_port()), "--host", "127.0.0.1",
                        "--data-parallel-size", "2", "--data-parallel-size-local", "0", "--data-parallel-address", "127.0.0.1",
                        "--data-parallel-rpc-port", str(port)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "VLLM_ENGINE_READY_TIMEOUT_S": "6"})
    assert r.returncode != 0
    assert "waiting for data-parallel ranks 0, 1 to join at tcp://127.0.0.1:" in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "data-parallel ranks 0, 1 did not join within 6 s" in last, r.stderr


def test_a_headless_rank_the_head_refuses_exits_with_its_reason(pagoda):
    """A node with the wrong secret, a rank that belongs to the head, and a different model: each refused, on both sides."""
    port = free_port()
    head = start_head(pagoda, ["--data-parallel-size", "2", "--data-parallel-size-local", "1",
                               "--data-parallel-address", "127.0.0.1", "--data-parallel-rpc-port", str(port)])
    try:
        rpc = ["--data-parallel-address", "127.0.0.1", "--data-parallel-rpc-port", str(port), "--data-parallel-size", "2",
               "--data-parallel-size-local", "1", "--data-parallel-engine-ready-timeout", "60"]
        # A node with another deployment's secret: refused before its hello is read, a line on both sides.
        stranger = subprocess.run([pagoda, "serve", MODEL, "--headless", *COMMON, *rpc, "--data-parallel-start-rank", "1"],
                                  capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "PAGODA_INTERNAL_SECRET": "another-deployment-secret"})
        assert stranger.returncode != 0
        assert "cannot reach the head" in stranger.stderr and "wrong secret" in stranger.stderr, stranger.stderr
        assert re.search(r"refused an engine RPC peer \(127\.0\.0\.1:\d+\) on tcp://127\.0\.0\.1:\d+: wrong MAC", head.log_text())
        wrong_model = str(CONFORMANCE / "models" / "tiny-qwen2")
        bad = subprocess.run([pagoda, "serve", wrong_model, "--headless", *COMMON, *rpc, "--data-parallel-start-rank", "1"],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode != 0
        assert "rank 1 serves a different model" in bad.stderr, bad.stderr
        local = subprocess.run([pagoda, "serve", MODEL, "--headless", *COMMON, *rpc, "--data-parallel-start-rank", "0"],
                               capture_output=True, text=True, timeout=120)
        assert local.returncode != 0
        assert "rank 0 belongs to the head's local ranks 0..<1" in local.stderr, local.stderr
        log = head.log_text()
        assert "refused an engine core" in log and "serves a different model" in log and "belongs to the head's local ranks" in log
    finally:
        head.stop()


@pytest.mark.parametrize("args, needle", [
    (["--headless", "--api-server-count", "2", "--data-parallel-size", "2"], "--api-server-count 2 cannot be used with --headless"),
    (["--data-parallel-size", "2", "--data-parallel-start-rank", "2", "--headless"], "--data-parallel-start-rank 2: must be less than --data-parallel-size 2"),
    (["--data-parallel-size", "2", "--data-parallel-size-local", "3"], "--data-parallel-size-local 3: must be at most --data-parallel-size 2"),
    (["--data-parallel-size", "4", "--data-parallel-size-local", "2", "--data-parallel-start-rank", "3", "--headless"], "exceed --data-parallel-size 4"),
    (["--data-parallel-size", "4", "--data-parallel-size-local", "0", "--headless"], "--data-parallel-size-local must be at least 1 with --headless"),
    (["--data-parallel-size", "4", "--data-parallel-rank", "1", "--headless"], "--data-parallel-rank cannot be used with --headless"),
    (["--data-parallel-size", "4", "--data-parallel-size-local=-1"], "must not be negative"),
    (["--data-parallel-size", "2", "--data-parallel-size-local", "1", "--data-parallel-engine-ready-timeout", "0"], "--data-parallel-engine-ready-timeout"),
])
def test_flag_combinations_vllm_rejects_are_one_line_errors(pagoda, args, needle):
    r = subprocess.run([pagoda, "serve", MODEL, "--port", str(free_port()), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert needle in r.stderr.strip().splitlines()[0], r.stderr


def test_ready_timeout_from_the_environment_is_checked(pagoda):
    r = subprocess.run([pagoda, "serve", MODEL, "--port", str(free_port()), "--data-parallel-size", "2", "--data-parallel-size-local", "1"],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "VLLM_ENGINE_READY_TIMEOUT_S": "soon"})
    assert r.returncode != 0
    assert "VLLM_ENGINE_READY_TIMEOUT_S" in r.stderr.strip().splitlines()[0], r.stderr
