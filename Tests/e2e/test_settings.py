"""Settings come in through one door: each multiprocess-executor setting is a flag with its `PAGODA_*`
environment variable as a fallback, read and validated once by the command line and sent to the workers.
Also the start-up errors that used to crash the process (a KV cache larger than memory)."""
import os
import subprocess

import pytest

from conftest import free_port

GENERATE = ["--prompt", "Hello", "--max-tokens", "3", "--ignore-eos", "--threads", "1",
            "--max-model-len", "64", "--kv-cache-memory-bytes", "20000000"]


def run(pagoda, args, env=None, timeout=120):
    full = dict(os.environ)
    for k in [k for k in full if k.startswith("PAGODA_") and k != "PAGODA_CONFORMANCE"]:
        del full[k]
    full.update(env or {})
    return subprocess.run([pagoda, *args], capture_output=True, text=True, timeout=timeout, env=full)


def first_line(r):
    return (r.stderr or r.stdout).strip().splitlines()[0]


@pytest.mark.parametrize("args, env, needle", [
    (["-pp", "2", "--pipeline-layer-partition", "1,1,1"], {}, "--pipeline-layer-partition"),
    (["-pp", "2"], {"PAGODA_PP_LAYER_PARTITION": "a,b"}, "PAGODA_PP_LAYER_PARTITION"),
    (["-pp", "2"], {"VLLM_PP_LAYER_PARTITION": "0,2"}, "VLLM_PP_LAYER_PARTITION"),
    (["-tp", "2"], {"PAGODA_WORKER_HOSTS": "10.1.1.1"}, "PAGODA_WORKER_HOSTS: must list 2 addresses"),
    (["-tp", "2", "--worker-hosts", "10.1.1.1,10.1.1.2", "--distributed-transport", "shm"], {}, "--distributed-transport"),
    (["-tp", "2"], {"PAGODA_DIST_TRANSPORT": "udp"}, "PAGODA_DIST_TRANSPORT"),
    (["-tp", "2"], {"PAGODA_COMM_TIMEOUT_S": "soon"}, "PAGODA_COMM_TIMEOUT_S"),
    (["-tp", "2", "--distributed-timeout-seconds", "0"], {}, "--distributed-timeout-seconds"),
    (["-pp", "2"], {"PAGODA_MAX_CONCURRENT_BATCHES": "0"}, "--max-concurrent-batches"),
    (["-tp", "2", "--worker-control-host", "10.1.1.1:9"], {}, "--worker-control-host: must be an IPv4 address"),
    (["--max-logprobs", "-2"], {}, "--max-logprobs: must be -1 (the vocabulary size) or at least 0"),
])
def test_bad_settings_are_one_line_errors_naming_their_source(pagoda, small_model, args, env, needle):
    r = run(pagoda, ["generate", small_model, *GENERATE, *args], env)
    assert r.returncode != 0
    assert needle in first_line(r), r.stderr


def test_flag_wins_over_the_environment(pagoda, small_model):
    # The variable alone is wrong for -pp 2; the flag replaces it, so the run succeeds.
    r = run(pagoda, ["generate", small_model, *GENERATE, "-pp", "2", "--pipeline-layer-partition", "1,1"],
            {"PAGODA_PP_LAYER_PARTITION": "5,5,5"})
    assert r.returncode == 0, r.stderr


def test_layer_partition_from_the_environment_reaches_the_workers(pagoda, small_model):
    # The sum is checked against the model's 2 layers where the model loads: in the pipeline workers.
    r = run(pagoda, ["generate", small_model, *GENERATE, "-pp", "2"], {"PAGODA_PP_LAYER_PARTITION": "2,1"})
    assert r.returncode != 0
    assert "pipeline layer partition 2,1 must have 2 entries summing to 2 layers" in r.stderr + r.stdout
    ok = run(pagoda, ["generate", small_model, *GENERATE, "-pp", "2"], {"PAGODA_PP_LAYER_PARTITION": "1,1"})
    assert ok.returncode == 0, ok.stderr


def test_worker_executable_setting_is_used(pagoda, small_model, tmp_path):
    missing = str(tmp_path / "no-such-pagoda")
    r = run(pagoda, ["generate", small_model, *GENERATE, "-tp", "2"], {"PAGODA_WORKER_EXECUTABLE": missing})
    assert r.returncode != 0
    assert missing in r.stderr + r.stdout


@pytest.mark.parametrize("verb", ["serve", "generate"])
def test_kv_cache_larger_than_memory_is_a_clear_error(pagoda, small_model, verb):
    extra = ["--port", str(free_port())] if verb == "serve" else ["--prompt", "Hi", "--max-tokens", "2"]
    r = run(pagoda, [verb, small_model, "--max-model-len", "64", "--kv-cache-memory-bytes", "999999999999999", *extra])
    out = r.stderr + r.stdout
    assert r.returncode != 0
    assert "Fatal error" not in out
    assert "does not fit in memory" in out, out
