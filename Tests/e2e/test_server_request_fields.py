"""Request fields end to end (issue 12, part 3): `logit_bias` steers the real model's greedy pick,
and every field Pagoda does not implement is a 400 naming it, through the official `openai` client
and plain HTTP, while the server keeps serving."""
import json

import openai
import pytest

from conftest import free_port
from serve_process import ServeProcess

SERVED = "tiny"


@pytest.fixture(scope="module")
def server(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(), ["--served-model-name", SERVED, "--max-model-len", "256", "--seed", "0"])
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)


def post_json(server, path, body):
    status, _, data = server.post(path, body)
    return status, json.loads(data)


def token_ids(server, text):
    status, body = post_json(server, "/tokenize", {"model": SERVED, "prompt": text, "add_special_tokens": False})
    assert status == 200, body
    return body["tokens"]


def detokenize(server, ids):
    status, body = post_json(server, "/detokenize", {"model": SERVED, "tokens": ids})
    assert status == 200, body
    return body["prompt"]


GREEDY = dict(model=SERVED, temperature=0, extra_body={"skip_special_tokens": False})


def greedy_text(client, prompt, max_tokens, **extra):
    kw = dict(GREEDY, prompt=prompt, max_tokens=max_tokens)
    kw["extra_body"] = dict(kw["extra_body"], ignore_eos=True)
    return client.completions.create(**kw, **extra).choices[0].text


def test_plus_100_bias_makes_greedy_pick_the_token(server, client):
    forced = token_ids(server, " banana")[0]
    text = greedy_text(client, "The weather today is", 3, logit_bias={str(forced): 100})
    assert text == detokenize(server, [forced] * 3)
    # The chat endpoint takes the same field.
    r = client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "Hi"}], max_tokens=2,
                                       temperature=0, logit_bias={str(forced): 100}, extra_body={"ignore_eos": True})
    assert r.choices[0].message.content == detokenize(server, [forced] * 2)


def test_minus_100_on_the_greedy_token_changes_the_pick(server, client):
    checked = 0
    for prompt in ["The capital of France is", "One, two, three,", "Hello", "def main():", "The weather today is"]:
        first = greedy_text(client, prompt, 1)
        ids = token_ids(server, first)
        if len(ids) != 1 or detokenize(server, ids) != first:
            continue  # the text does not name its token unambiguously
        assert greedy_text(client, prompt, 1) == first  # greedy is deterministic
        banned = greedy_text(client, prompt, 1, logit_bias={str(ids[0]): -100})
        assert banned != first
        # A bias too small to overturn the pick leaves it alone; no bias costs nothing.
        assert greedy_text(client, prompt, 1, logit_bias={str(ids[0]): 0}) == first
        checked += 1
    assert checked >= 1


def test_bad_logit_bias_is_a_400_naming_it(server, client):
    for bias in [{"5": 101}, {"5": -100.5}, {"10000000": 1}, {"x": 1}]:
        status, body = post_json(server, "/v1/completions", {"model": SERVED, "prompt": "x", "max_tokens": 1, "logit_bias": bias})
        assert status == 400 and body["error"]["param"] == "logit_bias", (bias, body)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}], max_tokens=1,
                                       logit_bias={"5": 200})
    assert e.value.body["param"] == "logit_bias"


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]

REJECTED_BOTH = [
    # Structured outputs are served (test_structured_outputs.py); a constraint that cannot be compiled is a 400.
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x"}}),
    ("guided_json", {"type": "string", "format": "date"}),
    ("guided_regex", "(a"),
    ("guided_choice", []),
    ("allowed_token_ids", [1, 2]),
    ("bad_words", ["x"]),
    ("prompt_logprobs", 21),
    ("use_beam_search", True),
    ("logits_processors", ["x"]),
    ("priority", 1),
    ("cache_salt", "s"),
    ("stream_options", {"include_usage": True}),
]
REJECTED_CHAT = [
    ("tool_choice", "auto"),
    ("functions", [{"name": "f"}]),
    ("modalities", ["audio"]),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("prediction", {"type": "content", "content": "x"}),
    ("reasoning_effort", "low"),
    ("echo", True),
]


@pytest.mark.parametrize("field,value", REJECTED_BOTH + [("suffix", "z"), ("best_of", 3)])
def test_unsupported_completion_fields_are_a_400_naming_them(server, field, value):
    status, body = post_json(server, "/v1/completions", {"model": SERVED, "prompt": "x", "max_tokens": 1, field: value})
    assert status == 400 and body["error"]["param"] == field and body["error"]["type"] == "BadRequestError", body
    assert field in body["error"]["message"]


@pytest.mark.parametrize("field,value", REJECTED_BOTH + REJECTED_CHAT)
def test_unsupported_chat_fields_are_a_400_naming_them(server, client, field, value):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}], max_tokens=1,
                                       extra_body={field: value})
    assert e.value.status_code == 400 and e.value.body["param"] == field


def test_no_op_values_metadata_and_unknown_fields_are_served(server, client):
    r = client.chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": "x"}], max_tokens=2, n=1, user="u", logprobs=False,
        response_format={"type": "text"}, tool_choice="none", metadata={"k": "v"}, store=False, service_tier="auto",
        extra_body={"no_such_field": 1, "use_beam_search": False, "spaces_between_special_tokens": True})
    assert r.choices[0].finish_reason in ("length", "stop")
    with_tools = client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "x"}], max_tokens=2,
                                                tools=TOOLS, tool_choice="none")
    assert with_tools.choices[0].message.tool_calls is None
    c = client.completions.create(model=SERVED, prompt="x", max_tokens=2, best_of=1, user="u",
                                  stream=True, stream_options={"include_usage": True}, extra_body={"another_unknown": [1]})
    assert [chunk for chunk in c][-1].usage is not None


def test_server_survives_every_rejection(server, client):
    for field, value in REJECTED_BOTH + REJECTED_CHAT:
        server.post("/v1/chat/completions", {"model": SERVED, "messages": [{"role": "user", "content": "x"}], field: value})
    status, body = post_json(server, "/v1/completions", {"model": SERVED, "prompt": "x", "max_tokens": 9223372036854775807})
    assert status == 400 and body["error"]["param"] == "max_tokens"
    assert client.completions.create(model=SERVED, prompt="still fine", max_tokens=2).usage.completion_tokens >= 1


def test_documents_and_request_chat_template_reach_the_template(server):
    template = "{% for d in documents %}[{{ d.text }}]{% endfor %}{{ messages[0].content }}"
    status, body = post_json(server, "/tokenize", {"model": SERVED, "prompt": "[alpha][beta]hi", "add_special_tokens": False})
    expected = body["tokens"]
    status, body = post_json(server, "/v1/chat/completions", {
        "model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "chat_template": template,
        "documents": [{"text": "alpha"}, {"text": "beta"}]})
    assert status == 200, body
    assert body["usage"]["prompt_tokens"] == len(expected)
    # /tokenize takes the same chat_template, and tools reach it.
    status, body = post_json(server, "/tokenize", {
        "model": SERVED, "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS,
        "chat_template": "{{ tools[0].function.name }}:{{ messages[0].content }}"})
    assert status == 200 and body["tokens"] == token_ids(server, "f:hi"), body


def test_truncate_prompt_tokens_and_request_id(server, client):
    ids = token_ids(server, "one two three four five six seven")
    r = client.completions.create(model=SERVED, prompt=ids, max_tokens=3, temperature=0,
                                  extra_body={"truncate_prompt_tokens": 3, "request_id": "my-id-1"})
    assert r.usage.prompt_tokens == 3 and r.id == "cmpl-my-id-1"
    tail = client.completions.create(model=SERVED, prompt=ids[-3:], max_tokens=3, temperature=0)
    assert r.choices[0].text == tail.choices[0].text
    status, body = post_json(server, "/v1/completions", {"model": SERVED, "prompt": "x", "truncate_prompt_tokens": 0})
    assert status == 400 and body["error"]["param"] == "truncate_prompt_tokens"
