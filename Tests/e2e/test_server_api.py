"""`pagoda serve` end to end: a real server process with the committed small model, driven by the
official `openai` client and plain HTTP. One server for the whole module (start-up is the slow part)."""
import json
import subprocess

import openai
import pytest

from conftest import free_port
from serve_process import ServeProcess

SERVED = "tiny"
VLLM_README_NAME = "Qwen/Qwen2.5-1.5B-Instruct"
MAX_MODEL_LEN = 512


@pytest.fixture(scope="module")
def server(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(),
                     ["--served-model-name", SERVED, VLLM_README_NAME, "--max-model-len", str(MAX_MODEL_LEN), "--seed", "0"])
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)


def tokenize(server, **body):
    status, _, data = server.post("/tokenize", {"model": SERVED, **body})
    assert status == 200, data
    return json.loads(data)


# --- completions ---------------------------------------------------------------------------

def test_completion_greedy_text_and_usage_match_tokenize(server, client):
    prompt = "San Francisco is a"
    r = client.completions.create(model=SERVED, prompt=prompt, max_tokens=12, temperature=0)
    assert r.object == "text_completion" and r.model == SERVED and r.id.startswith("cmpl-")
    assert len(r.choices) == 1 and r.choices[0].index == 0
    assert r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.prompt_tokens == tokenize(server, prompt=prompt)["count"]
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 12
    # Greedy decoding is deterministic.
    again = client.completions.create(model=SERVED, prompt=prompt, max_tokens=12, temperature=0)
    assert again.choices[0].text == r.choices[0].text


def test_completion_stream_equals_non_stream(client):
    kw = dict(model=SERVED, prompt="The capital of France is", max_tokens=16, temperature=0)
    whole = client.completions.create(**kw).choices[0]
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == whole.text
    assert finishes == [whole.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens <= 16


def test_prompt_as_token_ids_and_as_a_list(server, client):
    ids = tokenize(server, prompt="Hello world")["tokens"]
    by_text = client.completions.create(model=SERVED, prompt="Hello world", max_tokens=6, temperature=0)
    by_ids = client.completions.create(model=SERVED, prompt=ids, max_tokens=6, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage.prompt_tokens == len(ids)
    many = client.completions.create(model=SERVED, prompt=["Hello world", "One two three"], max_tokens=4, temperature=0)
    assert sorted(c.index for c in many.choices) == [0, 1]
    assert [c for c in many.choices if c.index == 0][0].text == client.completions.create(
        model=SERVED, prompt="Hello world", max_tokens=4, temperature=0).choices[0].text


def test_echo_prepends_the_prompt(client):
    r = client.completions.create(model=SERVED, prompt="Echo me", max_tokens=3, temperature=0, echo=True)
    plain = client.completions.create(model=SERVED, prompt="Echo me", max_tokens=3, temperature=0)
    assert r.choices[0].text == "Echo me" + plain.choices[0].text


def test_n_choices_and_seeded_sampling_is_reproducible(client):
    kw = dict(model=SERVED, prompt="Once upon a time", max_tokens=10, temperature=1.0, seed=1234, n=3,
              extra_body={"ignore_eos": True})
    a = client.completions.create(**kw)
    b = client.completions.create(**kw)
    assert sorted(c.index for c in a.choices) == [0, 1, 2]
    texts_a = [c.text for c in sorted(a.choices, key=lambda c: c.index)]
    texts_b = [c.text for c in sorted(b.choices, key=lambda c: c.index)]
    assert texts_a == texts_b, "the same seed gives the same choices"
    assert len(set(texts_a)) > 1, "the choices of one seeded request differ from each other"
    assert a.usage.completion_tokens == 30, "usage counts the tokens of every choice"
    other = client.completions.create(**{**kw, "seed": 99, "n": 1})
    # A different seed gives different text with overwhelming probability on a 151k vocabulary.
    assert other.choices[0].text != texts_a[0]


def test_stop_string_cuts_the_text(client):
    kw = dict(model=SERVED, prompt="Count: one two three", max_tokens=40, temperature=0)
    full = client.completions.create(**kw).choices[0].text
    if len(full) < 8:
        pytest.skip(f"greedy output too short to pick a stop string from: {full!r}")
    stop = full[len(full) // 2: len(full) // 2 + 2]
    expected = full[: full.find(stop)]
    r = client.completions.create(stop=[stop], **kw).choices[0]
    assert r.text == expected
    assert r.finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(stop=stop, stream=True, **kw) if c.choices)
    assert streamed == expected
    incl = client.completions.create(stop=[stop], extra_body={"include_stop_str_in_output": True}, **kw).choices[0]
    assert incl.text == expected + stop


def test_completion_logprobs(client):
    r = client.completions.create(model=SERVED, prompt="Logprobs please", max_tokens=5, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    n = r.usage.completion_tokens
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == n
    assert all(x <= 0.0 for x in lp.token_logprobs)
    for tok, chosen, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert 1 <= len(top) <= 3
        # Greedy: the chosen token is the most likely one.
        assert chosen >= max(top.values()) - 1e-4


def test_vllm_extra_sampling_fields_are_accepted(client):
    r = client.completions.create(
        model=SERVED, prompt="Extras", max_tokens=8, temperature=0.8, top_p=0.9, seed=7,
        extra_body={"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1, "min_tokens": 4, "ignore_eos": True,
                    "stop_token_ids": [151645], "skip_special_tokens": True})
    assert r.usage.completion_tokens >= 4
    ignore = client.completions.create(model=SERVED, prompt="Extras", max_tokens=8, temperature=0, extra_body={"ignore_eos": True})
    assert ignore.usage.completion_tokens == 8 and ignore.choices[0].finish_reason == "length"


# --- chat ------------------------------------------------------------------------------------

MESSAGES = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Say hi."}]


def test_chat_stream_equals_non_stream_and_usage(server, client):
    whole = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=16, temperature=0)
    assert whole.object == "chat.completion"
    assert whole.choices[0].message.role == "assistant"
    assert whole.usage.prompt_tokens == tokenize(server, messages=MESSAGES)["count"]
    chunks = list(client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=16, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_chat_logprobs_and_n(client):
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3, n=2)
    assert sorted(c.index for c in r.choices) == [0, 1]
    for c in r.choices:
        content = c.logprobs.content
        assert 1 <= len(content) <= 4
        for t in content:
            assert t.logprob <= 0 and len(t.top_logprobs) == 3
            assert t.logprob >= max(x.logprob for x in t.top_logprobs) - 1e-4
    assert r.choices[0].message.content == r.choices[1].message.content, "greedy choices agree"


def test_chat_template_kwargs_and_add_generation_prompt_reach_the_template(server):
    with_prompt = tokenize(server, messages=MESSAGES, add_generation_prompt=True)["count"]
    without = tokenize(server, messages=MESSAGES, add_generation_prompt=False)["count"]
    assert with_prompt > without
    status, _, body = server.post("/v1/chat/completions", {
        "model": SERVED, "messages": MESSAGES, "max_tokens": 2, "chat_template_kwargs": {"enable_thinking": False}})
    assert status == 200, body


# --- other routes ----------------------------------------------------------------------------

def test_models_health_ping_version_load_metrics(server, client):
    models = client.models.list()
    assert [m.id for m in models.data] == [SERVED, VLLM_README_NAME]
    assert server.get("/health")[0] == 200
    assert server.get("/ping")[0] == 200
    status, _, body = server.get("/version")
    assert status == 200 and "version" in json.loads(body)
    status, _, body = server.get("/load")
    load = json.loads(body)
    assert status == 200 and load["data_parallel_rank"] == 0 and "num_requests_running" in load
    status, headers, body = server.get("/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    for name in ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prefix_cache_queries", "vllm:prefix_cache_hits", "vllm:prompt_tokens_total",
                 "vllm:generation_tokens_total", "vllm:time_to_first_token_seconds_bucket",
                 "vllm:time_per_output_token_seconds_bucket", "vllm:e2e_request_latency_seconds_bucket",
                 "vllm:request_success_total"]:
        assert name in text, name
    assert f'model_name="{SERVED}"' in text


def test_detokenize_round_trips_tokenize(server):
    ids = tokenize(server, prompt="round trip")["tokens"]
    status, _, body = server.post("/detokenize", {"model": SERVED, "tokens": ids})
    assert status == 200 and json.loads(body)["prompt"] == "round trip"


def test_vllm_readme_curl_examples(server):
    base = server.base_url
    completion = subprocess.run(
        ["curl", "-sS", f"{base}/v1/completions", "-H", "Content-Type: application/json", "-d",
         '{"model": "Qwen/Qwen2.5-1.5B-Instruct", "prompt": "San Francisco is a", "max_tokens": 7, "temperature": 0}'],
        capture_output=True, timeout=60, check=True)
    body = json.loads(completion.stdout)
    assert body["object"] == "text_completion" and body["usage"]["completion_tokens"] <= 7
    chat = subprocess.run(
        ["curl", "-sS", f"{base}/v1/chat/completions", "-H", "Content-Type: application/json", "-d",
         '{"model": "Qwen/Qwen2.5-1.5B-Instruct", "messages": [{"role": "system", "content": "You are a helpful assistant."},'
         ' {"role": "user", "content": "Who won the world series in 2020?"}]}'],
        capture_output=True, timeout=120, check=True)
    body = json.loads(chat.stdout)
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] <= MAX_MODEL_LEN


# --- errors ----------------------------------------------------------------------------------

def error_of(status_body):
    status, _, body = status_body
    return status, json.loads(body)["error"]


def test_errors_are_openai_json_with_the_right_status(server, client):
    status, e = error_of(server.post("/v1/completions", {"model": SERVED, "prompt": "x", "max_tokens": MAX_MODEL_LEN}))
    assert status == 400 and e["type"] == "BadRequestError" and e["param"] == "max_tokens" and e["code"] == 400
    assert "maximum context length" in e["message"]
    status, e = error_of(server.post("/v1/completions", {"model": "no-such-model", "prompt": "x"}))
    assert status == 404 and e["type"] == "NotFoundError" and e["param"] == "model"
    status, e = error_of(server.post("/v1/completions", b'{"model": "tiny", "prompt": '))
    assert status == 400 and "JSON" in e["message"]
    status, e = error_of(server.post("/v1/completions", {"model": SERVED, "prompt": "x", "temperature": "hot"}))
    assert status == 400 and e["param"] == "temperature"
    status, e = error_of(server.post("/v1/chat/completions", {"model": SERVED, "messages": "not a list"}))
    assert status == 400 and e["param"] == "messages"
    status, e = error_of(server.post("/v1/completions", b'{"prompt": "' + b"a" * (9 << 20) + b'"}'))
    assert status == 413 and e["code"] == 413
    status, e = error_of(server.get("/v1/nothing-here"))
    assert status == 404
    # The client library sees the same errors as typed exceptions.
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=SERVED, prompt="x", max_tokens=MAX_MODEL_LEN * 2)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES, max_tokens=2)
    # None of that disturbed the server.
    assert client.completions.create(model=SERVED, prompt="still fine", max_tokens=2).usage.completion_tokens >= 1


def counter(text, name):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_prefix_cache_and_token_counters_reach_metrics(server, client):
    before = server.get("/metrics")[2].decode()
    prompt = "A shared prefix that spans several KV blocks of sixteen tokens each, " * 4
    first = client.completions.create(model=SERVED, prompt=prompt, max_tokens=3, temperature=0)
    second = client.completions.create(model=SERVED, prompt=prompt, max_tokens=3, temperature=0)
    assert second.choices[0].text == first.choices[0].text
    after = server.get("/metrics")[2].decode()
    assert counter(after, "vllm:prefix_cache_hits_total") - counter(before, "vllm:prefix_cache_hits_total") >= 16, \
        "the second request reused at least one cached block"
    assert counter(after, "vllm:prefix_cache_queries_total") > counter(before, "vllm:prefix_cache_queries_total")
    assert counter(after, "vllm:prompt_tokens_total") - counter(before, "vllm:prompt_tokens_total") == 2 * first.usage.prompt_tokens
    assert counter(after, "vllm:generation_tokens_total") - counter(before, "vllm:generation_tokens_total") == \
        first.usage.completion_tokens + second.usage.completion_tokens
