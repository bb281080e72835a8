"""`pagoda bench serve` end to end against the fake OpenAI streaming server (fake_openai_server.py).

Covers the printed block, the saved JSON keys and counts, exact random prompt lengths, failure accounting
(HTTP errors and mid-stream errors are counted with their messages, never dropped), a server that is down,
the chat backend, ShareGPT files and the concurrency sweep. Every process is bounded in time and killed.
"""
import json
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import ROOT

FAKE = pathlib.Path(__file__).with_name("fake_openai_server.py")
MODEL_DIR = ROOT / "models" / "tiny-qwen3"


class FakeServer:
    def __init__(self, tmp_path, *args):
        self.log = tmp_path / f"fake-{len(list(tmp_path.iterdir()))}.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", "0", "--log", str(self.log), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line + self.proc.stderr.read()
        self.port = int(line.split()[1])

    def requests(self):
        if not self.log.exists():
            return []
        return [json.loads(l) for l in self.log.read_text().splitlines()]

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def fake(tmp_path):
    servers = []

    def start(*args):
        s = FakeServer(tmp_path, *args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def bench(pagoda, *args, timeout=120):
    return subprocess.run([pagoda, "bench", "serve", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def common(port, tmp_path, name="r.json"):
    return ["--port", port, "--model", MODEL_DIR, "--served-model-name", "fake-model", "--disable-tqdm",
            "--save-result", "--result-dir", tmp_path / "results", "--result-filename", name]


VLLM_KEYS = [
    "date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness", "max_concurrency",
    "duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
    "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls", "generated_texts",
    "errors", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms",
    "std_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
]


def test_random_dataset_counts_block_and_json(pagoda, fake, tmp_path):
    s = fake("--token-delay-ms", "2")
    r = bench(pagoda, *common(s.port, tmp_path), "--num-prompts", 8, "--random-input-len", 32,
              "--random-output-len", 6, "--max-concurrency", 4, "--seed", 5)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "============ Serving Benchmark Result ============" in out
    assert "Successful requests:                     8         " in out
    assert "Failed requests:                         0         " in out
    assert "Maximum request concurrency:             4         " in out
    assert "Total generated tokens:                  48        " in out
    assert "Total input tokens:                      256       " in out
    for title in ("Time to First Token", "Time per Output Token (excl. 1st token)", "Inter-token Latency"):
        assert title in out
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    for key in VLLM_KEYS:
        assert key in result, key
    assert result["backend"] == "openai"
    assert result["num_prompts"] == 8 and result["completed"] == 8 and result["failed"] == 0
    assert result["request_rate"] == "inf" and result["max_concurrency"] == 4
    assert result["input_lens"] == [32] * 8
    assert result["output_lens"] == [6] * 8
    assert result["total_output_tokens"] == 48 and result["total_input_tokens"] == 256
    assert all(len(itl) == 5 for itl in result["itls"])
    assert all(t > 0 for t in result["ttfts"])
    assert result["generated_texts"][0] == " w0 w1 w2 w3 w4 w5"
    assert result["errors"] == [""] * 8
    assert 1 <= result["max_concurrent_requests"] <= 4
    sent = s.requests()
    assert len(sent) == 8
    for req in sent:
        body = req["body"]
        assert req["path"] == "/v1/completions"
        assert body["model"] == "fake-model" and body["max_tokens"] == 6 and body["stream"] is True
        assert body["ignore_eos"] is True, "random prompts ask for exactly their output length"
        assert body["stream_options"] == {"include_usage": True}
    ids = [req["request_id"] for req in sent]
    prefix = ids[0].rsplit("-", 1)[0] + "-"
    assert re.fullmatch(r"bench-[0-9a-f]+-", prefix), prefix
    assert sorted(ids) == sorted(f"{prefix}{i}" for i in range(8))
    # The prompts have exactly 32 tokens under the model's tokenizer (HF tokenizers as the reference).
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    assert [len(tok.encode(req["body"]["prompt"], add_special_tokens=True).ids) for req in sent] == [32] * 8


def test_failing_endpoint_counts_failures(pagoda, fake, tmp_path):
    s = fake("--fail-every", "3", "--error-mid-stream", "4")
    r = bench(pagoda, *common(s.port, tmp_path), "--num-prompts", 12, "--random-input-len", 16,
              "--random-output-len", 4, "--max-concurrency", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    # Requests 3, 6, 9, 12 get HTTP 500; 4 and 8 break mid-stream (request 12 fails first with 500).
    assert result["completed"] == 6 and result["failed"] == 6
    errors = [e for e in result["errors"] if e]
    assert len(errors) == 6
    assert sum("HTTP 500" in e and "deliberate failure" in e for e in errors) == 4
    assert sum("deliberate mid-stream failure" in e for e in errors) == 2
    assert result["output_lens"].count(0) == 6 and result["total_output_tokens"] == 24
    assert len(result["input_lens"]) == 12
    assert "Failed requests:                         6         " in r.stdout
    assert "Failed requests during benchmark run detected (capping to 10):" in r.stdout
    assert "deliberate failure" in r.stdout


def test_all_requests_failing_is_an_error_with_the_result_saved(pagoda, fake, tmp_path):
    s = fake("--fail-every", "1")
    r = bench(pagoda, *common(s.port, tmp_path), "--num-prompts", 3, "--random-input-len", 8,
              "--random-output-len", 2)
    assert r.returncode != 0
    assert "all 3 requests failed" in r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["completed"] == 0 and result["failed"] == 3


def test_server_down_is_one_clear_line(pagoda, tmp_path):
    from conftest import free_port
    port = free_port()
    r = bench(pagoda, "--port", port, "--model", MODEL_DIR, "--num-prompts", 2, "--disable-tqdm", timeout=60)
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: cannot reach the server at http://127.0.0.1:{port}")


def test_bad_flags_are_one_line_errors(pagoda):
    for args, needle in [
        (["--backend", "tgi"], "--backend"),
        (["--dataset-name", "sharegpt"], "--dataset-path"),
        (["--goodput", "ttft=5"], "--goodput"),
        (["--random-range-ratio", "1.5"], "--random-range-ratio"),
    ]:
        r = bench(pagoda, "--port", 9, *args, timeout=30)
        assert r.returncode != 0
        assert needle in r.stderr, (args, r.stderr)


def test_chat_backend_without_usage_counts_with_tokenizer(pagoda, fake, tmp_path):
    s = fake("--no-usage", "--eos-after", "3")
    r = bench(pagoda, *common(s.port, tmp_path), "--backend", "openai-chat", "--num-prompts", 4,
              "--random-input-len", 16, "--random-output-len", 5, "--percentile-metrics", "ttft,e2el",
              "--metric-percentiles", "50,90")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["backend"] == "openai-chat" and result["completed"] == 4
    # No usage chunk: " w0 w1 w2 w3 w4" is counted by the tokenizer (ignore_eos gives 5 chunks).
    assert all(n > 0 for n in result["output_lens"])
    assert result["generated_texts"][0] == " w0 w1 w2 w3 w4"
    for key in ("p50_ttft_ms", "p90_ttft_ms", "mean_e2el_ms", "p90_e2el_ms"):
        assert key in result
    assert "mean_tpot_ms" not in result
    assert "P90 E2EL (ms):" in r.stdout
    req = s.requests()[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["messages"][0]["role"] == "user"
    assert req["body"]["max_completion_tokens"] == 5


def test_sharegpt_dataset(pagoda, fake, tmp_path):
    data = [
        {"id": str(i), "conversations": [
            {"from": "human", "value": f"Tell me about the number {i} and why it matters to people."},
            {"from": "gpt", "value": f"The number {i} matters because it is one of the numbers we count with."}]}
        for i in range(5)
    ] + [{"id": "x", "conversations": [{"from": "human", "value": "single turn"}]}]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(data))
    s = fake("--eos-after", "100")
    r = bench(pagoda, *common(s.port, tmp_path), "--dataset-name", "sharegpt", "--dataset-path", path,
              "--num-prompts", 5, "--request-rate", 50, "--seed", 1)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["completed"] == 5 and result["request_rate"] == 50.0
    assert "Request rate configured (RPS):           50.00     " in r.stdout
    prompts = sorted(req["body"]["prompt"] for req in s.requests())
    assert prompts == sorted(d["conversations"][0]["value"] for d in data[:5])
    # Output length comes from the reference answer's token count; EOS is not ignored for ShareGPT.
    assert all("ignore_eos" not in req["body"] for req in s.requests())
    assert all(req["body"]["max_tokens"] > 10 for req in s.requests())


def test_concurrency_sweep_one_row_per_level(pagoda, fake, tmp_path):
    s = fake("--token-delay-ms", "3")
    r = bench(pagoda, *common(s.port, tmp_path, "sweep.json"), "--concurrency-sweep", "1,2,4",
              "--prompts-multiplier", 2, "--random-input-len", 16, "--random-output-len", 4)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((tmp_path / "results" / "sweep.json").read_text())
    assert result["concurrency_sweep"] == [1, 2, 4]
    rows = result["results"]
    assert [row["max_concurrency"] for row in rows] == [1, 2, 4]
    assert [row["num_prompts"] for row in rows] == [2, 4, 8]
    assert [row["completed"] for row in rows] == [2, 4, 8]
    assert all(row["total_output_tokens"] == 4 * row["num_prompts"] for row in rows)
    sent = s.requests()
    assert len(sent) == 14
    assert len({req["request_id"] for req in sent}) == 14, "request ids are unique across levels"
    lines = r.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if "Concurrency Sweep Result" in l)
    header = lines[start + 1].split()
    assert header[:4] == ["Concurrency", "Prompts", "OK", "Failed"]
    table = lines[start + 3:start + 6]
    assert [row.split()[:4] for row in table] == [["1", "2", "2", "0"], ["2", "4", "4", "0"], ["4", "8", "8", "0"]]
    assert lines[start + 6].startswith("=====")


def test_progress_bar_only_on_a_terminal(pagoda, fake, tmp_path):
    import shlex
    import shutil
    # .ci/run installs `script` (bsdutils) where it is missing.
    assert shutil.which("script"), "`script` (util-linux/bsdutils) is needed to run under a pseudo-terminal"
    s = fake("--token-delay-ms", "1")
    args = [pagoda, "bench", "serve", "--port", str(s.port), "--model", str(MODEL_DIR), "--served-model-name",
            "fake-model", "--num-prompts", "5", "--random-input-len", "8", "--random-output-len", "3"]
    tty = subprocess.run(["script", "-qec", shlex.join(args), "/dev/null"], capture_output=True, text=True,
                         timeout=120)
    assert tty.returncode == 0, tty.stdout + tty.stderr
    assert "100%|██████████| 5/5 [" in tty.stdout
    piped = bench(pagoda, "--port", s.port, "--model", MODEL_DIR, "--served-model-name", "fake-model",
                  "--num-prompts", 5, "--random-input-len", 8, "--random-output-len", 3)
    assert piped.returncode == 0 and "5/5 [" not in piped.stdout + piped.stderr
    quiet = subprocess.run(["script", "-qec", shlex.join(args + ["--disable-tqdm"]), "/dev/null"],
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "5/5 [" not in quiet.stdout


def test_prefix_repetition_goodput_and_poisson_rate(pagoda, fake, tmp_path):
    s = fake("--token-delay-ms", "1")
    r = bench(pagoda, *common(s.port, tmp_path), "--dataset-name", "prefix_repetition", "--num-prompts", 6,
              "--prefix-repetition-prefix-len", 24, "--prefix-repetition-suffix-len", 8,
              "--prefix-repetition-num-prefixes", 2, "--prefix-repetition-output-len", 3,
              "--request-rate", 40, "--burstiness", 0.5, "--goodput", "ttft:60000", "e2el:60000")
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["completed"] == 6 and result["burstiness"] == 0.5 and result["request_rate"] == 40.0
    assert result["request_goodput"] == pytest.approx(result["request_throughput"]), "generous SLOs: all good"
    assert "Request goodput (req/s):" in r.stdout
    assert "Burstiness factor: 0.5 (Gamma distribution)" in r.stdout
    prompts = [req["body"]["prompt"] for req in s.requests()]
    assert len({p[:30] for p in prompts}) == 2, "two shared prefixes"
    assert all(req["body"]["max_tokens"] == 3 for req in s.requests())
    # Prompt lengths: prefix + suffix, give or take a merge at the seam.
    assert all(31 <= n <= 33 for n in result["input_lens"]), result["input_lens"]
    import tokenizers
    tok = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    counts = sorted(len(tok.encode(p, add_special_tokens=True).ids) for p in prompts)
    assert counts == sorted(result["input_lens"])


def test_server_closing_idle_connections_loses_no_request(pagoda, fake, tmp_path):
    # As llama-server: a kept-alive connection is closed shortly after each response, unannounced. A request
    # that left on such a connection is sent again on a new one, not counted as failed.
    s = fake("--token-delay-ms", "1", "--close-after-response-ms", "30")
    r = bench(pagoda, *common(s.port, tmp_path), "--dataset-name", "random", "--random-input-len", "16",
              "--random-output-len", "4", "--num-prompts", "64", "--max-concurrency", "8", "--ignore-eos")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["completed"] == 64 and result["failed"] == 0, result["errors"]
    # Every request reached the server exactly once (a resent one had never been read).
    assert len(s.requests()) == 64


@pytest.mark.parametrize("delay_ms", ["0", "30"])
def test_server_resetting_idle_connections_loses_no_request(pagoda, fake, tmp_path, delay_ms):
    # The close arrives as a reset, right after the response or a little later: whichever error the client sees
    # first (a reset, a write on a closed channel, the closed read end), a request the server never read is sent
    # again, not counted as failed (llama-server lost 2-8 of 64 this way to `I/O on closed channel`).
    s = fake("--token-delay-ms", "1", "--reset-after-response-ms", delay_ms)
    r = bench(pagoda, *common(s.port, tmp_path), "--dataset-name", "random", "--random-input-len", "16",
              "--random-output-len", "4", "--num-prompts", "64", "--max-concurrency", "8", "--ignore-eos")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "results" / "r.json").read_text())
    assert result["completed"] == 64 and result["failed"] == 0, result["errors"]
