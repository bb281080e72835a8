"""`pagoda serve` as a process: command-line errors, API keys, data-parallel rank labels, and
what happens when the engine-core process dies."""
import json
import os
import signal
import subprocess
import threading
import time

import openai
import pytest

from conftest import free_port
from serve_process import ServeProcess


def start(pagoda, model, *args, max_model_len=256):
    s = ServeProcess(pagoda, model, free_port(), ["--max-model-len", str(max_model_len), *args])
    try:
        s.wait_healthy()
    except Exception:
        s.stop()
        raise
    return s


@pytest.mark.parametrize("args, needle", [
    (["--no-such-flag"], "no-such-flag"),
    (["--port", "70000"], "port"),
    (["--port", "eighty"], "port"),
    (["--max-model-len", "-5"], "max-model-len"),
    (["--internal-secret-file", "/nonexistent/pagoda-secret"], "--internal-secret-file: cannot read /nonexistent/pagoda-secret"),
    (["--internal-secret-file", "/dev/null"], "the internal secret must have at least 16 characters"),
])
def test_bad_flags_fail_fast_with_a_message(pagoda, small_model, args, needle):
    r = subprocess.run([pagoda, "serve", small_model, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert needle in (r.stderr + r.stdout)
    first = (r.stderr or r.stdout).strip().splitlines()[0]
    assert "rror" in first, first


def test_missing_model_folder_is_a_clear_error(pagoda, tmp_path):
    r = subprocess.run([pagoda, "serve", str(tmp_path / "absent"), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "absent" in r.stderr + r.stdout


def test_meaningless_flags_are_accepted_with_a_note(pagoda, small_model):
    s = start(pagoda, small_model, "--trust-remote-code", "--enforce-eager")
    try:
        log = s.log_text()
        assert "--trust-remote-code" in log and "--enforce-eager" in log
    finally:
        s.stop()


def test_api_key_guards_v1_routes(pagoda, small_model):
    s = start(pagoda, small_model, "--api-key", "sekret", "--served-model-name", "m")
    try:
        status, _, body = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1})
        assert status == 401 and json.loads(body)["error"]["code"] == 401
        status, _, _ = s.post("/v1/completions", {"model": "m", "prompt": "x", "max_tokens": 1},
                              headers={"Authorization": "Bearer wrong"})
        assert status == 401
        ok = openai.OpenAI(base_url=s.base_url + "/v1", api_key="sekret", max_retries=0)
        assert ok.completions.create(model="m", prompt="x", max_tokens=1).usage.completion_tokens == 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.base_url + "/v1", api_key="nope", max_retries=0).models.list()
        assert s.get("/health")[0] == 200, "health needs no key"
    finally:
        s.stop()


def test_external_data_parallel_rank_is_reported(pagoda, small_model):
    s = start(pagoda, small_model, "--data-parallel-size", "2", "--data-parallel-rank", "1", "--served-model-name", "m")
    try:
        load = json.loads(s.get("/load")[2])
        assert load["data_parallel_rank"] == 1 and load["data_parallel_size"] == 2
        assert 'engine="1"' in s.get("/metrics")[2].decode()
        assert "rank 1 of 2" in s.log_text()
    finally:
        s.stop()
    r = subprocess.run([pagoda, "serve", small_model, "--data-parallel-size", "2", "--data-parallel-rank", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "data-parallel-rank" in r.stderr + r.stdout


def kill_engine_core_mid_stream(s, engine_pid):
    """Starts a long streamed completion, SIGKILLs the engine core once the first token arrived, and waits (15 s)
    for the stream to end; returns (how it ended, or None if it still runs; the time of the kill)."""
    client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="x", max_retries=0, timeout=30)
    outcome = {}

    def long_stream():
        try:
            for _ in client.completions.create(model="m", prompt="go", max_tokens=4000, stream=True,
                                               extra_body={"ignore_eos": True}):
                outcome.setdefault("first", time.monotonic())
            outcome["end"] = "completed"
        except Exception as e:  # noqa: BLE001 - the in-flight stream must end with an error, not hang or finish
            outcome["end"] = f"error: {type(e).__name__}: {e}"

    t = threading.Thread(target=long_stream)
    t.start()
    deadline = time.monotonic() + 30
    while "first" not in outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(engine_pid, signal.SIGKILL)
    killed = time.monotonic()
    t.join(timeout=15)
    return (None if t.is_alive() else outcome.get("end", "")), killed


def test_engine_core_death_fails_requests_and_exits_nonzero(pagoda, small_model):
    s = start(pagoda, small_model, "--served-model-name", "m", "--no-restart-engines", max_model_len=4096)
    try:
        engines = s.engine_core_pids()
        assert len(engines) == 1, "serve runs its engine core as a child process"
        end, killed = kill_engine_core_mid_stream(s, engines[0])
        assert end is not None, "the in-flight stream ended"
        assert end.startswith("error"), end
        s.proc.wait(timeout=15)
        assert time.monotonic() - killed < 15
        assert s.proc.returncode != 0
        log = s.log_text()
        assert "engine core" in log and "signal 9" in log, log[-2000:]
    finally:
        s.stop()


def test_a_dead_single_engine_core_is_restarted_and_serves_again(pagoda, small_model):
    s = start(pagoda, small_model, "--served-model-name", "m", max_model_len=4096)
    try:
        engines = s.engine_core_pids()
        assert len(engines) == 1
        end, _ = kill_engine_core_mid_stream(s, engines[0])
        assert end is not None and end.startswith("error"), end
        client = openai.OpenAI(base_url=s.base_url + "/v1", api_key="x", max_retries=0, timeout=30)
        # The server stays up and serves again once the engine core is back (a bounded wait).
        deadline = time.monotonic() + 120
        while s.get("/health")[0] != 200:
            assert s.proc.poll() is None, s.log_text()[-2000:]
            assert time.monotonic() < deadline, "the engine core was not restarted in time"
            time.sleep(0.2)
        assert client.completions.create(model="m", prompt="hello", max_tokens=4).usage.completion_tokens == 4
        new = s.engine_core_pids()
        assert len(new) == 1 and new != engines
        log = s.log_text()
        assert "engine core died" in log and "restarted" in log, log[-2000:]
    finally:
        s.stop()
