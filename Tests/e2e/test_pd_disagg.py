"""Prefill/decode disaggregation with real processes on loopback (issue 14): `pagoda serve` prefill servers
(`--kv-transfer-config` kv_producer) and decode servers (kv_consumer) with the TCP connector, `pagoda
disagg-proxy` in front, and the shared-storage connector. Answers must equal one plain server's, token for
token (greedy, streamed and not); the decode servers' metrics must show the KV came over the wire; faults
(producer killed, hold timeouts, decode server down, client disconnects) must never hang or leak blocks."""
import concurrent.futures as futures
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import deployment_secret
from router_harness import SERVE_LIMITS, Proc, free_port, request, stream_events, wait_http
from serve_process import wait_until

LONG = "The history of the old harbour town is long and full of storms, ships and trade. " * 6
PROMPTS = [LONG, "Once upon a time", "1, 2, 3, 4,"]
MESSAGES = [{"role": "user", "content": "Tell me about the harbour. " * 8}]


@pytest.fixture(autouse=True, scope="module")
def _deployment_secret():
    """The secret every process of these deployments shares (started separately, they cannot make one up)."""
    with deployment_secret() as s:
        yield s


def kv_config(role, **extra):
    c = {"kv_connector": "TCPConnector", "kv_role": role, "kv_ip": "127.0.0.1", "kv_port": 0}
    c.update(extra)
    return json.dumps(c)


def start(pagoda, log_dir, model, name, *args):
    port = free_port()
    proc = Proc([pagoda, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "m",
                 *SERVE_LIMITS, *args],
                log_dir, f"{name}-{port}")
    wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
    return proc, port


def start_disagg_proxy(pagoda, log_dir, prefill, decode, *extra):
    port = free_port()
    args = [pagoda, "disagg-proxy", "--host", "127.0.0.1", "--port", str(port),
            "--prefill", *[f"127.0.0.1:{p}" for p in prefill], "--decode", *[f"127.0.0.1:{p}" for p in decode],
            "--health-check-interval", "0.2", "--health-check-timeout", "1", *extra]
    proc = Proc(args, log_dir, f"disagg-proxy-{port}")
    wait_http(f"http://127.0.0.1:{port}/health", 30, proc)
    return proc, port


def server_metrics(port):
    """{name: summed value} of a server's /metrics (labels dropped)."""
    r = request(port, "GET", "/metrics")
    assert r.status_code == 200
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([\w:]+)(?:\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def wait_kv_empty(ports, timeout=20):
    """Every server's KV usage back to 0 (blocks held for readers included), within `timeout`."""
    deadline = time.time() + timeout
    while True:
        usage = {p: server_metrics(p).get("vllm:kv_cache_usage_perc", -1) for p in ports}
        if all(u == 0 for u in usage.values()):
            return
        assert time.time() < deadline, f"KV blocks still held: {usage}"
        time.sleep(0.2)


def complete(port, prompt, max_tokens=12, stream=False, chat=False, extra=None, timeout=120):
    body = {"model": "m", "max_tokens": max_tokens, "temperature": 0}
    body.update({"messages": prompt} if chat else {"prompt": prompt})
    body.update(extra or {})
    path = "/v1/chat/completions" if chat else "/v1/completions"
    if not stream:
        r = request(port, "POST", path, body, timeout=timeout)
        assert r.status_code == 200, r.text
        j = r.json()
        return j["choices"][0]["message"]["content"] if chat else j["choices"][0]["text"]
    body["stream"] = True
    status, _, events = stream_events(port, path, body, timeout=timeout)
    assert status == 200
    text = ""
    for e in events:
        if e == "data: [DONE]":
            continue
        j = json.loads(e[6:])
        assert "error" not in j, j
        for c in j["choices"]:
            text += (c.get("delta", {}).get("content") or "") if chat else c.get("text", "")
    return text


@pytest.fixture(scope="module")
def cluster(pagoda, small_model, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("pd")
    procs = []
    try:
        single, sport = start(pagoda, log_dir, small_model, "single")
        procs.append(single)
        prefill, decode = [], []
        for i in range(2):
            # The second prefill server names vLLM's NixlConnector: Pagoda runs its TCP connector for it.
            cfg = kv_config("kv_producer") if i == 0 else kv_config("kv_producer").replace("TCPConnector", "NixlConnector")
            p, pp = start(pagoda, log_dir, small_model, f"prefill{i}", "--kv-transfer-config", cfg)
            procs.append(p)
            prefill.append(pp)
            # decode0 copies same-host KV out of the producer's memory; decode1 reads the TCP stream.
            extra = {} if i == 0 else {"kv_connector_extra_config": {"same_host_copy": False}}
            d, dp = start(pagoda, log_dir, small_model, f"decode{i}", "--kv-transfer-config", kv_config("kv_consumer", **extra))
            procs.append(d)
            decode.append(dp)
        proxy11, port11 = start_disagg_proxy(pagoda, log_dir, prefill[:1], decode[:1])
        proxy22, port22 = start_disagg_proxy(pagoda, log_dir, prefill, decode)
        procs += [proxy11, proxy22]
        yield {"single": sport, "prefill": prefill, "decode": decode, "p11": port11, "p22": port22, "procs": procs}
    finally:
        for p in reversed(procs):
            p.stop()


def test_1p1d_and_2p2d_answer_like_one_server_with_the_kv_over_the_wire(cluster):
    before = [server_metrics(p) for p in cluster["decode"]]
    for prompt in PROMPTS:
        for stream in (False, True):
            expect = complete(cluster["single"], prompt, stream=False)
            assert complete(cluster["p11"], prompt, stream=stream) == expect, (prompt, stream)
            assert complete(cluster["p22"], prompt, stream=stream) == expect, (prompt, stream)
    for stream in (False, True):
        expect = complete(cluster["single"], MESSAGES, chat=True)
        assert complete(cluster["p22"], MESSAGES, chat=True, stream=stream) == expect
    after = [server_metrics(p) for p in cluster["decode"]]
    transfers = sum(a.get("vllm:kv_transfer_requests_total", 0) - b.get("vllm:kv_transfer_requests_total", 0)
                    for a, b in zip(after, before))
    recomputes = sum(a.get("vllm:kv_transfer_recomputes_total", 0) - b.get("vllm:kv_transfer_recomputes_total", 0)
                     for a, b in zip(after, before))
    assert transfers == 14, after  # every request through a proxy (12 completions, 2 chats) loaded its KV
    assert recomputes == 0
    assert sum(a.get("vllm:kv_transfer_bytes_total", 0) for a in after) > 0
    # A producer's KV server counts a send when the read has ended (after the reader's `Done` for a same-host
    # copy) and its engine publishes the count with a later step, possibly after the decode answer is out:
    # the count is awaited (bounded), not read once.
    wait_until(lambda: sum(server_metrics(p).get("vllm:kv_transfer_sends_total", 0) for p in cluster["prefill"]) >= 14,
               10, "the producers counted 14 sends")
    decode_logs = {p.name.split("-")[0]: p.output() for p in cluster["procs"] if p.name.startswith("decode")}
    assert "copied out of their memory" in decode_logs["decode0"]
    assert "copied out of their memory" not in decode_logs["decode1"]  # same_host_copy false: the TCP stream
    wait_kv_empty(cluster["prefill"] + cluster["decode"] + [cluster["single"]])


@pytest.mark.parametrize("decode_tp", [1, 2], ids=["tp2-to-tp1", "tp2-to-tp2"])
def test_1p1d_with_tensor_parallel_prefill_answers_like_one_server(pagoda, small_model, cluster, tmp_path, decode_tp):
    """A producer with --tensor-parallel-size 2: each TP rank serves its KV heads on its own port; a TP=1
    consumer reads both ranks' heads into its blocks (re-slicing), a TP=2 consumer reads rank to rank."""
    procs = []
    try:
        prod, pport = start(pagoda, tmp_path, small_model, "prefill-tp2", "--tensor-parallel-size", "2",
                            "--kv-transfer-config", kv_config("kv_producer"))
        procs.append(prod)
        dec_args = ["--tensor-parallel-size", "2"] if decode_tp == 2 else []
        dec, dport = start(pagoda, tmp_path, small_model, f"decode-tp{decode_tp}", *dec_args,
                           "--kv-transfer-config", kv_config("kv_consumer"))
        procs.append(dec)
        proxy, port = start_disagg_proxy(pagoda, tmp_path, [pport], [dport])
        procs.append(proxy)
        for prompt in PROMPTS:
            expect = complete(cluster["single"], prompt)
            for stream in (False, True):
                assert complete(port, prompt, stream=stream) == expect, (prompt, stream)
        expect = complete(cluster["single"], MESSAGES, chat=True)
        assert complete(port, MESSAGES, chat=True, stream=True) == expect
        m = server_metrics(dport)
        assert m["vllm:kv_transfer_requests_total"] == 2 * len(PROMPTS) + 1
        assert m["vllm:kv_transfer_recomputes_total"] == 0
        assert m["vllm:kv_transfer_bytes_total"] > 0
        # The prefill answer names one KV port per TP rank.
        body = {"model": "m", "prompt": LONG, "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": True}}
        params = request(pport, "POST", "/v1/completions", body).json()["kv_transfer_params"]
        assert len(params["remote_ports"]) == 2 and params["remote_port"] == params["remote_ports"][0]
        body = {"model": "m", "prompt": LONG, "max_tokens": 12, "temperature": 0, "kv_transfer_params": params}
        r = request(dport, "POST", "/v1/completions", body, timeout=120)
        assert r.status_code == 200, r.text
        usage = r.json()["usage"]
        assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"] - 1
        assert r.json()["choices"][0]["text"] == complete(cluster["single"], LONG)
        wait_kv_empty([pport, dport])
        # Every read was served (rank 0 counts one per request).
        assert server_metrics(pport)["vllm:kv_transfer_sends_total"] == 2 * len(PROMPTS) + 2
    finally:
        for p in reversed(procs):
            p.stop()


def test_decode_server_computes_only_the_last_prompt_token(cluster):
    body = {"model": "m", "prompt": LONG, "max_tokens": 1, "temperature": 0, "kv_transfer_params": {"do_remote_decode": True}}
    r = request(cluster["prefill"][0], "POST", "/v1/completions", body)
    assert r.status_code == 200, r.text
    params = r.json()["kv_transfer_params"]
    assert params["do_remote_prefill"] is True
    assert params["remote_port"] > 0 and params["remote_host"] == "127.0.0.1" and params["remote_block_ids"]
    body = {"model": "m", "prompt": LONG, "max_tokens": 12, "temperature": 0, "kv_transfer_params": params}
    r = request(cluster["decode"][0], "POST", "/v1/completions", body, timeout=120)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"] - 1
    assert r.json()["choices"][0]["text"] == complete(cluster["single"], LONG)
    wait_kv_empty(cluster["prefill"][:1] + cluster["decode"][:1])


def test_bad_kv_transfer_params_are_a_400(cluster):
    for params in ({"do_remote_prefill": True}, {"remote_port": "x"}):
        body = {"model": "m", "prompt": "hi", "max_tokens": 2, "kv_transfer_params": params}
        r = request(cluster["decode"][0], "POST", "/v1/completions", body)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "kv_transfer_params"
    wait_kv_empty(cluster["decode"][:1])


def test_client_disconnect_mid_stream_leaks_no_blocks(cluster):
    body = {"model": "m", "prompt": LONG, "max_tokens": 200, "temperature": 0, "ignore_eos": True, "stream": True}
    for _ in range(3):
        status, _, events = stream_events(cluster["p22"], "/v1/completions", body, timeout=60, stop_after=2)
        assert status == 200 and len(events) == 2
    wait_kv_empty(cluster["prefill"] + cluster["decode"])


def test_proxy_health_metrics_and_request_id(cluster):
    r = request(cluster["p22"], "GET", "/health")
    assert r.status_code == 200 and r.json()["healthy_decode_instances"] == 2
    r = request(cluster["p22"], "POST", "/v1/completions", {"model": "m", "prompt": "Hi", "max_tokens": 2},
                headers={"X-Request-Id": "pd-test-1"})
    assert r.status_code == 200 and r.headers.get("x-request-id") == "pd-test-1"
    text = request(cluster["p22"], "GET", "/metrics").text
    assert 'pagoda_proxy_backend_requests_routed_total{role="prefill"' in text
    assert 'pagoda_proxy_backend_requests_routed_total{role="decode"' in text
    assert text.count("# TYPE pagoda_proxy_backend_requests_routed_total") == 1
    wait_kv_empty(cluster["prefill"] + cluster["decode"])


def test_alias_connector_is_logged(cluster):
    assert any("NixlConnector is served by Pagoda's TCPConnector" in p.output() for p in cluster["procs"])


def decode_leg(cport, leg):
    """The decode leg of one request sent straight to the consumer on `cport`: `leg` is (prompt, the
    prefill's kv_transfer_params); greedy, 12 tokens; the text."""
    prompt, params = leg
    body = {"model": "m", "prompt": prompt, "max_tokens": 12, "temperature": 0, "kv_transfer_params": params}
    r = request(cport, "POST", "/v1/completions", body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


def test_producer_killed_mid_run_every_answer_arrives_by_recompute(pagoda, small_model, tmp_path):
    """kill -9 of a PD producer holding prefilled blocks: every decode answer still arrives (the decode server
    recomputes the prefill it cannot read), equal to one server's, and the survivor's KV usage returns to 0."""
    single, sport = start(pagoda, tmp_path, small_model, "single")
    prod, pport = start(pagoda, tmp_path, small_model, "prefill", "--kv-transfer-config", kv_config("kv_producer"))
    cons, cport = start(pagoda, tmp_path, small_model, "decode", "--kv-transfer-config",
                        kv_config("kv_consumer", kv_connector_extra_config={"transfer_timeout_s": 5}))
    try:
        # Prefill legs done, then the producer dies before any decode server read the blocks.
        legs = []
        for prompt in PROMPTS:
            body = {"model": "m", "prompt": prompt, "max_tokens": 1, "temperature": 0,
                    "kv_transfer_params": {"do_remote_decode": True}}
            r = request(pport, "POST", "/v1/completions", body)
            assert r.status_code == 200, r.text
            legs.append((prompt, r.json()["kv_transfer_params"]))
        prod.stop(signal.SIGKILL)  # kill -9 of the producer's process group: its server and its engine core
        # The engine core (which serves the KV) goes down with its server; wait until its KV port refuses.
        kv_port = legs[0][1]["remote_port"]
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", kv_port), timeout=1).close()
            except OSError:
                break
            assert time.time() < deadline, "the producer's KV server outlived it"
            time.sleep(0.05)
        started = time.time()

        def decode(leg):
            return decode_leg(cport, leg)

        with futures.ThreadPoolExecutor(3) as pool:
            got = list(pool.map(decode, legs))
        assert time.time() - started < 60
        assert got == [complete(sport, p) for p in PROMPTS]
        m = server_metrics(cport)
        assert m["vllm:kv_transfer_recomputes_total"] == len(PROMPTS)
        assert m.get("vllm:kv_transfer_requests_total", 0) == 0
        assert "computing its prefill here" in cons.output()
        wait_kv_empty([cport])
    finally:
        for p in (cons, prod, single):
            p.stop()


def test_stalled_producer_times_out_and_both_sides_free_every_block(pagoda, small_model, cluster, tmp_path):
    """The producer's engine core freezes (SIGSTOP) with held blocks: the decode server's reads time out after its
    transfer_timeout_s and every answer arrives through recompute, also for a client that disconnects while its
    request waits for KV; once the producer runs again its readers are gone, and both sides end with no block held."""
    prod, pport = start(pagoda, tmp_path, small_model, "prefill", "--kv-transfer-config", kv_config("kv_producer"))
    cons, cport = start(pagoda, tmp_path, small_model, "decode", "--kv-transfer-config",
                        kv_config("kv_consumer", kv_connector_extra_config={"transfer_timeout_s": 3}))
    stopped = False
    try:
        legs = []
        for prompt in PROMPTS + [LONG]:
            body = {"model": "m", "prompt": prompt, "max_tokens": 1, "temperature": 0,
                    "kv_transfer_params": {"do_remote_decode": True}}
            r = request(pport, "POST", "/v1/completions", body)
            assert r.status_code == 200, r.text
            legs.append((prompt, r.json()["kv_transfer_params"]))
        # The KV server runs in the producer's engine core, a process of its own.
        core = int(re.search(r"engine core ready \(pid (\d+)\)", prod.output()).group(1))
        os.kill(core, signal.SIGSTOP)
        stopped = True
        started = time.time()
        # The last leg's client goes away while its request waits for the KV.
        prompt, params = legs.pop()
        body = json.dumps({"model": "m", "prompt": prompt, "max_tokens": 50, "stream": True,
                           "kv_transfer_params": params}).encode()
        gone = socket.create_connection(("127.0.0.1", cport), timeout=10)
        gone.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

        def decode(leg):
            return decode_leg(cport, leg)

        with futures.ThreadPoolExecutor(3) as pool:
            pending = pool.map(decode, legs)
            time.sleep(0.5)
            gone.close()
            got = list(pending)
        assert time.time() - started < 30, "a stalled producer held the answers beyond the transfer timeout"
        assert got == [complete(cluster["single"], p) for p in PROMPTS]
        m = server_metrics(cport)
        assert m["vllm:kv_transfer_recomputes_total"] == len(PROMPTS) + 1
        assert m.get("vllm:kv_transfer_requests_total", 0) == 0
        wait_kv_empty([cport])
        os.kill(core, signal.SIGCONT)
        stopped = False
        wait_kv_empty([pport], timeout=30)
    finally:
        if stopped:
            os.kill(core, signal.SIGCONT)
        for p in (cons, prod):
            p.stop()


def test_hold_timeout_frees_the_producers_blocks(pagoda, small_model, tmp_path):
    prod, pport = start(pagoda, tmp_path, small_model, "prefill", "--kv-transfer-config",
                        kv_config("kv_producer", kv_connector_extra_config={"transfer_timeout_s": 1}))
    try:
        body = {"model": "m", "prompt": LONG, "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": True}}
        assert request(pport, "POST", "/v1/completions", body).status_code == 200
        wait_kv_empty([pport], timeout=15)
        assert server_metrics(pport)["vllm:kv_transfer_send_timeouts_total"] == 1
    finally:
        prod.stop()


def test_prefill_down_and_decode_down_before_any_byte(pagoda, small_model, tmp_path):
    single, sport = start(pagoda, tmp_path, small_model, "single")
    p0, pp0 = start(pagoda, tmp_path, small_model, "prefill0", "--kv-transfer-config", kv_config("kv_producer"))
    p1, pp1 = start(pagoda, tmp_path, small_model, "prefill1", "--kv-transfer-config", kv_config("kv_producer"))
    d0, dp0 = start(pagoda, tmp_path, small_model, "decode0", "--kv-transfer-config", kv_config("kv_consumer"))
    d1, dp1 = start(pagoda, tmp_path, small_model, "decode1", "--kv-transfer-config", kv_config("kv_consumer"))
    proxy, port = start_disagg_proxy(pagoda, tmp_path, [pp0, pp1], [dp0, dp1], "--unhealthy-after", "100")
    try:
        expect = complete(sport, LONG)
        p1.stop()
        d1.stop()
        # Health probes are told to ignore the deaths: every request meets the dead servers' refusals and is retried.
        for _ in range(4):
            assert complete(port, LONG) == expect
            assert complete(port, LONG, stream=True) == expect
        p0.stop()
        r = request(port, "POST", "/v1/completions", {"model": "m", "prompt": "Hi", "max_tokens": 2}, timeout=30)
        assert r.status_code == 503, r.text
        assert "no prefill server" in r.json()["error"]["message"]
        wait_kv_empty([dp0])
    finally:
        for p in (proxy, d1, d0, p1, p0, single):
            p.stop()


def test_shared_storage_second_server_serves_the_first_ones_prompt(pagoda, small_model, tmp_path):
    cfg = json.dumps({"kv_connector": "SharedStorageConnector", "kv_role": "kv_both",
                      "kv_connector_extra_config": {"shared_storage_path": str(tmp_path / "kv")}})
    first, fport = start(pagoda, tmp_path, small_model, "first", "--kv-transfer-config", cfg)
    try:
        body = {"model": "m", "prompt": LONG, "max_tokens": 12, "temperature": 0}
        r = request(fport, "POST", "/v1/completions", body, timeout=120)
        assert r.status_code == 200
        expect = r.json()["choices"][0]["text"]
        assert server_metrics(fport)["vllm:kv_transfer_saved_blocks_total"] > 0
    finally:
        first.stop()
    second, sport = start(pagoda, tmp_path, small_model, "second", "--kv-transfer-config", cfg)
    try:
        r = request(sport, "POST", "/v1/completions", body, timeout=120)
        assert r.status_code == 200
        j = r.json()
        assert j["choices"][0]["text"] == expect
        cached = j["usage"]["prompt_tokens_details"]["cached_tokens"]
        assert cached >= 16 and cached >= j["usage"]["prompt_tokens"] - 16
        m = server_metrics(sport)
        assert m["vllm:external_prefix_cache_hits_total"] == cached
        assert m["vllm:kv_transfer_requests_total"] == 1
        wait_kv_empty([sport])
    finally:
        second.stop()


@pytest.mark.parametrize("config,field", [
    ('{"kv_connector":"FooConnector","kv_role":"kv_producer"}', "kv_connector"),
    ('{"kv_connector":"TCPConnector","kv_role":"kv_bad"}', "kv_role"),
    ('{"kv_connector":"TCPConnector"', "JSON"),
    ('{"kv_connector":"TCPConnector","kv_role":"kv_both","kv_port":99999}', "kv_port"),
])
def test_bad_kv_transfer_config_is_a_one_line_startup_error(pagoda, small_model, config, field):
    r = subprocess.run([pagoda, "serve", small_model, "--port", str(free_port()), "--kv-transfer-config", config],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    errors = [l for l in r.stderr.splitlines() if "kv-transfer-config" in l]
    assert len(errors) == 1 and field in errors[0], r.stderr


def test_kv_transfer_with_several_engines_in_one_server_is_refused(pagoda, small_model):
    r = subprocess.run([pagoda, "serve", small_model, "--port", str(free_port()), "--data-parallel-size", "2",
                        "--kv-transfer-config", kv_config("kv_producer")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--data-parallel-rank" in r.stderr and "kv-transfer-config" in r.stderr, r.stderr
