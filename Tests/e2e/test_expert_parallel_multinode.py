"""`--enable-expert-parallel` across nodes: a head (`pagoda serve`, API server and data-parallel rank 0) and a
`--headless` node (its own `pagoda serve --headless` command, rank 1) form one expert-parallel group over TCP at
the head's `--data-parallel-address` (ports `--data-parallel-rpc-port` + 1 and + 2), proving the deployment
secret. Run twice: on loopback, and with the headless node in a network namespace made here (prefix `ep2`,
joined by a veth pair) when `ip netns` is permitted. Greedy tokens equal one engine's without EP; the idle
rank steps in dummy batches; killing the headless node mid-wave ends every in-flight request with an error
naming the rank within the timeout, and the head keeps running."""
import concurrent.futures
import os
import random
import socket
import subprocess
import time

import openai
import pytest

from conftest import CONFORMANCE, deployment_secret, free_port
from netns import linked_namespace
from serve_process import HeadlessNode, ServeProcess, greedy, greedy_once, load, metric, openai_client, wait_until

MODEL = str(CONFORMANCE / "models" / "tiny-qwen3-moe")
PROMPTS = ["The capital of France is", "Once upon a time", "1, 2, 3, 4,", "def fibonacci(n):"]
COMMON = ["--dtype", "float32", "--threads", "1", "--max-model-len", "512"]
TIMEOUT = 30  # --distributed-timeout-seconds: every collective's wait on a peer (and the group rendezvous)


@pytest.fixture(autouse=True, scope="module")
def _deployment_secret():
    """The secret head and headless node share (started separately, they cannot make one up)."""
    with deployment_secret() as s:
        yield s


@pytest.fixture(scope="module")
def reference(pagoda):
    return greedy_once(pagoda, MODEL, free_port(), [*COMMON, "--served-model-name", "m", "--disable-log-requests"], PROMPTS)


@pytest.fixture(params=["loopback", "netns"])
def node_host(request):
    """Where the headless node runs: (command prefix, the head's address as the node reaches it)."""
    if request.param == "loopback":
        yield [], "127.0.0.1"
        return
    tag = os.getpid() % 100000
    with linked_namespace("ep2", f"10.197.{tag % 200 + 20}") as (ns, _, head_addr):
        yield ["ip", "netns", "exec", ns], head_addr


def free_port_run(host):
    """A port p with p, p + 1 and p + 2 free on `host` (the head's RPC port and its two EP groups), taken below the
    kernel's ephemeral range: p + 1 and p + 2 are bound only when the head's engine cores start, seconds after this
    check, and an outgoing connection in between (the headless node dialing the head) could get one of them as its
    source port if they lay inside the range (seen once in CI: `bind 127.0.0.1:p+1: Address already in use`)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low = max(1024, ephemeral_low - 12000)
    for _ in range(200):
        p = random.randrange(low, max(low + 1, ephemeral_low - 3))
        socks = []
        try:
            for q in (p, p + 1, p + 2):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, q))
            return p
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of three free ports")


def deploy(pagoda, prefix, head_addr, *extra):
    """A head with DP rank 0 and a headless node with DP rank 1 under expert parallelism; both up."""
    port = free_port_run(head_addr)
    shared = ["--enable-expert-parallel", "--data-parallel-size", "2", "--data-parallel-size-local", "1",
              "--data-parallel-address", head_addr, "--data-parallel-rpc-port", str(port),
              "--distributed-timeout-seconds", str(TIMEOUT), *extra]
    head = ServeProcess(pagoda, MODEL, free_port(), [*COMMON, "--served-model-name", "m", "--disable-log-requests", *shared])
    node = HeadlessNode(pagoda, MODEL, prefix, [*COMMON, *shared, "--data-parallel-start-rank", "1"])
    try:
        head.wait_healthy(timeout=120)
    except Exception as e:
        text = node.log_text()
        head.stop()
        node.stop()
        raise AssertionError(f"{e}\nheadless node:\n{text}") from None
    return head, node


@pytest.mark.parametrize("tp", [1, 2], ids=["tp1", "tp2"])
def test_a_headless_rank_serves_like_the_non_ep_engine_and_steps_when_idle(pagoda, reference, node_host, tp):
    # With -tp 2 the EP group holds four workers, two on each node (EP rank = DP rank × 2 + TP rank).
    prefix, head_addr = node_host
    head, node = deploy(pagoda, prefix, head_addr, "--expert-load-report-interval", "4", "-tp", str(tp))
    try:
        assert [e["rank"] for e in load(head)["engines"]] == [0, 1]
        assert greedy(head, PROMPTS) == reference
        # Under concurrent load: each prompt twice at once, spread over both ranks.
        c = openai_client(head, 60)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(lambda p: c.completions.create(model="m", prompt=p, max_tokens=12, temperature=0)
                                  .choices[0].text, PROMPTS + PROMPTS, timeout=120))
        assert texts == reference + reference
        for e in (0, 1):
            assert metric(head, "vllm:request_success_total", engine=e) > 0, f"rank {e} served nothing"
            assert metric(head, "pagoda:ep_expert_tokens_total", engine=e) > 0, f"rank {e}'s experts got no tokens"
        assert f"over 2 data-parallel ranks × {tp} tensor ranks across nodes (TCP groups at {head_addr}:" in head.log_text()

        # Only rank 0 has work: the headless rank still steps, in dummy batches, and the wave ends.
        wait_until(lambda: metric(head, "pagoda:dp_in_wave", engine="0") == 0 and metric(head, "pagoda:dp_in_wave", engine="1") == 0,
                   10, "the wave ends")
        dummy0, steps0 = metric(head, "pagoda:dp_dummy_steps_total", engine="1"), metric(head, "pagoda:dp_wave_steps_total", engine="1")
        served1 = metric(head, "vllm:request_success_total", engine="1")
        for p in PROMPTS[:2]:
            r = c.completions.create(model="m", prompt=p, max_tokens=12, temperature=0, extra_body={"data_parallel_rank": 0})
            assert r.choices[0].finish_reason == "length"
        wait_until(lambda: metric(head, "pagoda:dp_in_wave", engine="0") == 0 and metric(head, "pagoda:dp_in_wave", engine="1") == 0,
                   10, "the wave ends")
        dummy = metric(head, "pagoda:dp_dummy_steps_total", engine="1") - dummy0
        steps = metric(head, "pagoda:dp_wave_steps_total", engine="1") - steps0
        assert dummy >= 2 * 12 and dummy == steps, (dummy, steps)
        assert metric(head, "vllm:request_success_total", engine="1") == served1
        time.sleep(0.5)  # no rank steps while all are idle
        assert metric(head, "pagoda:dp_dummy_steps_total", engine="1") - dummy0 == dummy
        waves = metric(head, "pagoda:dp_waves_total", engine="0")
        assert metric(head, "pagoda:dp_waves_total", engine="1") == waves >= 2
        # Both engines agree on the wave number: every wave ended advanced it by one.
        assert metric(head, "pagoda:dp_current_wave", engine="0") == metric(head, "pagoda:dp_current_wave", engine="1") == waves
    finally:
        head.stop()
        node.stop()


def test_killing_the_headless_node_mid_wave_fails_every_request_naming_it(pagoda, node_host):
    prefix, head_addr = node_host
    head, node = deploy(pagoda, prefix, head_addr, "--max-model-len", "2048")
    try:
        c = openai_client(head, 90)

        def one(i):
            try:
                c.completions.create(model="m", prompt=f"long {i}", max_tokens=1800, temperature=0,
                                     extra_body={"data_parallel_rank": i % 2, "ignore_eos": True})
                return "completed"
            except openai.APIError as e:
                return f"error {getattr(e, 'status_code', None)}: {e}"

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, i) for i in range(6)]
            wait_until(lambda: all(e["num_requests_running"] > 0 for e in load(head)["engines"]), 30,
                       "both ranks run requests")
            killed = time.monotonic()
            node.kill()
            results = [f.result(timeout=60) for f in futures]
            elapsed = time.monotonic() - killed
        print("after killing the headless node:", results)
        # Every request ends with an error naming the lost rank, within the communicator timeout (plus slack).
        assert all(r.startswith("error") and "rank 1" in r for r in results), results
        # The engine failed these requests, not the client: a server error, never a 4xx. A request that had started
        # fails with a 500; one pinned to rank 1 that reached the head only after the loss gets a 503 (rank down).
        assert all(r.startswith(("error 500", "error 503")) for r in results), results
        assert any(r.startswith("error 500") for r in results), results
        assert elapsed < TIMEOUT + 15, elapsed
        assert head.proc.poll() is None
        wait_until(lambda: [e["up"] for e in load(head)["engines"]] == [True, False], 10, "the head marks rank 1 down")
        assert "data-parallel rank 1 (headless node) lost" in head.log_text()
        # The head keeps answering: a new request fails promptly naming the rank (the group is broken).
        started = time.monotonic()
        with pytest.raises(openai.APIError) as e:
            c.completions.create(model="m", prompt="after", max_tokens=4, temperature=0)
        assert time.monotonic() - started < TIMEOUT + 5 and "rank 1" in str(e.value)
        assert head.get("/health")[0] == 200
    finally:
        head.stop()
        node.stop()


def test_rank_zero_must_run_on_the_head(pagoda):
    r = subprocess.run([pagoda, "serve", MODEL, *COMMON, "--host", "127.0.0.1", "--port", str(free_port()),
                        "--enable-expert-parallel", "--data-parallel-size", "2", "--data-parallel-size-local", "0",
                        "--data-parallel-rpc-port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "needs data-parallel rank 0 on the head" in r.stderr.strip().splitlines()[-1], r.stderr
