"""`pagoda bench serve` against a live `pagoda serve` with the committed small model (models/tiny-qwen3).

Checks what a user would: every request completes, random prompts arrive with exactly --random-input-len
tokens (the server's own usage.prompt_tokens), --ignore-eos gives exactly --random-output-len tokens, the totals
and JSON keys are right, and a concurrency sweep gives one row per level. Loads are a few short requests; the
server is killed at the end.
"""
import json
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, free_port

MODEL_DIR = ROOT / "models" / "tiny-qwen3"


@pytest.fixture(scope="module")
def live_server(pagoda, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([pagoda, "serve", str(MODEL_DIR), "--host", "127.0.0.1", "--port", str(port),
                                 # A bounded KV cache: the default sizes it from system memory.
                                 "--kv-cache-memory-bytes", str(64 << 20), "--max-model-len", "2048"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        models = None
        while time.time() < deadline:
            if proc.poll() is not None:
                text = log.read_text()
                pytest.fail(f"pagoda serve exited with {proc.returncode}: {text[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as r:
                    models = json.load(r)
                break
            except OSError:
                time.sleep(0.5)
        assert models is not None, "pagoda serve did not come up in 180 s: " + log.read_text()[-2000:]
        yield port, models["data"][0]["id"]
    finally:
        proc.kill()
        proc.wait(timeout=30)


def bench(pagoda, port, name, tmp_path, *args):
    r = subprocess.run(
        [pagoda, "bench", "serve", "--port", str(port), "--model", str(MODEL_DIR), "--served-model-name", name,
         "--disable-tqdm", "--save-result", "--result-dir", str(tmp_path), "--result-filename", "r.json",
         *map(str, args)],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads((tmp_path / "r.json").read_text())


def test_live_random_exact_lengths(pagoda, live_server, tmp_path):
    port, name = live_server
    r, result = bench(pagoda, port, name, tmp_path, "--num-prompts", 6, "--random-input-len", 24,
                      "--random-output-len", 8, "--max-concurrency", 3, "--ignore-eos", "--seed", 3)
    assert result["completed"] == 6 and result["failed"] == 0, result["errors"]
    assert result["input_lens"] == [24] * 6, "server-counted prompt tokens must equal --random-input-len"
    assert result["output_lens"] == [8] * 6, "--ignore-eos must give exactly --random-output-len tokens"
    assert result["total_input_tokens"] == 144 and result["total_output_tokens"] == 48
    assert all(len(itl) >= 1 for itl in result["itls"])
    for key in ("date", "backend", "model_id", "tokenizer_id", "num_prompts", "request_rate", "burstiness",
                "max_concurrency", "duration", "request_throughput", "output_throughput", "total_token_throughput",
                "ttfts", "itls", "generated_texts", "errors", "mean_ttft_ms", "median_ttft_ms", "std_ttft_ms",
                "p99_ttft_ms", "mean_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms"):
        assert key in result, key
    assert "Successful requests:                     6         " in r.stdout
    assert "Total generated tokens:                  48        " in r.stdout


def test_live_chat_backend(pagoda, live_server, tmp_path):
    port, name = live_server
    _, result = bench(pagoda, port, name, tmp_path, "--backend", "openai-chat", "--num-prompts", 3,
                      "--random-input-len", 16, "--random-output-len", 5)
    assert result["completed"] == 3, result["errors"]
    assert result["output_lens"] == [5] * 3
    # The chat template wraps the prompt, so the server counts more than the 16 prompt tokens.
    assert all(n > 16 for n in result["input_lens"])


def test_live_sweep_one_row_per_level(pagoda, live_server, tmp_path):
    port, name = live_server
    r, result = bench(pagoda, port, name, tmp_path, "--concurrency-sweep", "1,2,4", "--prompts-per-concurrency", 4,
                      "--random-input-len", 16, "--random-output-len", 4)
    rows = result["results"]
    assert [row["max_concurrency"] for row in rows] == [1, 2, 4]
    assert all(row["completed"] == 4 and row["output_lens"] == [4] * 4 for row in rows)
    lines = r.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if "Concurrency Sweep Result" in l)
    assert [l.split()[0] for l in lines[start + 3:start + 6]] == ["1", "2", "4"]
