"""Reasoning split, prompt logprobs, content parts and usage chunks, end to end: real `pagoda serve`
processes over the conformance models, driven by the official `openai` client.

- tiny-llama3 in float32 with a 64-token step budget (long prompts are prefilled in chunks): prompt
  logprobs against the Hugging Face reference logits (log-softmax), content parts and
  `stream_options` on every conformance chat template.
- tiny-qwen2 with the DeepSeek-R1-Distill template (`--chat-template`), whose generation prompt opens
  `<think>`, and `--reasoning-parser deepseek_r1`.
"""
import json
import math
import pathlib
import subprocess

import numpy as np
import openai
import pytest

from conftest import CONFORMANCE, free_port
from serve_process import ServeProcess

MODELS = CONFORMANCE / "models"
TEMPLATES = CONFORMANCE / "chat_templates"
R1_TEMPLATE = TEMPLATES / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"
# The conformance README's float32 bound for logits (log-softmax subtracts one constant per row).
TOLERANCE = 1e-3

pytestmark = pytest.mark.skipif(not MODELS.exists(), reason=f"conformance data not found at {CONFORMANCE}")


def start(pagoda, model, args):
    s = ServeProcess(pagoda, str(model), free_port(), ["--served-model-name", "m", "--seed", "0"] + args)
    try:
        s.wait_healthy()
    except BaseException:
        s.stop()
        raise
    return s


@pytest.fixture(scope="module")
def llama(pagoda):
    s = start(pagoda, MODELS / "tiny-llama3", ["--dtype", "float32", "--max-model-len", "1024", "--max-num-batched-tokens", "64",
                                                 "--max-num-seqs", "16"])
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def r1(pagoda):
    s = start(pagoda, MODELS / "tiny-qwen2", ["--max-model-len", "512", "--chat-template", str(R1_TEMPLATE),
                                              "--reasoning-parser", "deepseek_r1"])
    try:
        yield s
    finally:
        s.stop()


def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=120)


def post(server, path, body):
    status, _, data = server.post(path, {"model": "m", **body}, timeout=120)
    return status, json.loads(data)


def reference(name):
    ref = json.loads((MODELS / name / "reference.json").read_text())
    return {p["name"]: p for p in ref["prompts"]}


def log_softmax_row(path):
    logits = np.load(path).astype(np.float64)
    m = logits.max()
    return logits - (m + math.log(np.exp(logits - m).sum()))


# --- prompt logprobs -------------------------------------------------------------------------

def test_echo_with_logprobs_returns_the_prompt_logprobs_of_the_reference(llama):
    long = reference("tiny-llama3")["long_300"]
    prompt = long["prompt_ids"] + [long["generated_ids"][0]]
    r = client(llama).completions.create(model="m", prompt=prompt, echo=True, logprobs=5, max_tokens=1, temperature=0)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(prompt) + 1 == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert lp.text_offset == sorted(lp.text_offset)
    # The last prompt token is scored by the logits at the position before it: the reference's full row.
    expected = log_softmax_row(MODELS / "tiny-llama3" / "long_300_last_prompt_logits.npy")
    last = len(prompt) - 1
    assert abs(lp.token_logprobs[last] - expected[prompt[-1]]) <= TOLERANCE
    top5 = sorted(expected[np.argsort(-expected)[:5]])
    assert sorted(lp.top_logprobs[last].values()) == pytest.approx(top5, abs=TOLERANCE)
    # The generated token's logprob follows the echoed prompt's.
    assert lp.token_logprobs[-1] is not None and r.usage.prompt_tokens == len(prompt) and r.usage.completion_tokens == 1


def check_against_reference_steps(prompt_logprobs, prompt, steps):
    """prompt = reference prompt + its greedy continuation: continuation token s is scored by step s's logits."""
    first = len(prompt) - len(steps)
    compared = 0
    for s, step in enumerate(steps):
        entry = prompt_logprobs[first + s]
        mine = entry[str(step["token"])]
        if step["margin_top1_top2"] > TOLERANCE:
            assert mine["rank"] == 1, f"step {s}"
        ref = {int(i): v for i, v in step["top10"]}
        for tid, e in entry.items():
            if int(tid) in ref:
                assert e["logprob"] - mine["logprob"] == pytest.approx(ref[int(tid)] - ref[step["token"]], abs=TOLERANCE), f"step {s}"
                assert isinstance(e["decoded_token"], str)
                compared += 1
    assert compared >= 3 * len(steps)


def test_prompt_logprobs_field_matches_the_reference_chunked_and_uncached(llama):
    c = client(llama)
    p = reference("tiny-llama3")["long_300"]  # ~340 tokens: several 64-token prefill chunks
    prompt = p["prompt_ids"] + p["generated_ids"]
    runs = []
    for _ in range(2):  # the second run would hit the prefix cache if prompt logprobs did not skip it
        r = c.completions.create(model="m", prompt=prompt, max_tokens=1, temperature=0, extra_body={"prompt_logprobs": 3})
        pl = r.choices[0].prompt_logprobs
        assert len(pl) == len(prompt) and pl[0] is None
        assert all(str(t) in e for t, e in zip(prompt[1:], pl[1:]))
        assert all(3 <= len(e) <= 4 for e in pl[1:]), "the top 3 and the prompt token itself"
        check_against_reference_steps(pl, prompt, p["steps"])
        assert r.choices[0].logprobs is None
        runs.append(pl)
    assert runs[0] == runs[1]


def test_chat_prompt_logprobs_equal_the_completions_ones_and_refuse_streams(llama):
    c = client(llama)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    r = c.chat.completions.create(model="m", messages=messages, max_tokens=2, temperature=0, extra_body={"prompt_logprobs": 2})
    pl = r.prompt_logprobs
    assert len(pl) == r.usage.prompt_tokens and pl[0] is None
    status, tok = post(llama, "/tokenize", {"messages": messages})
    assert status == 200
    ids = tok["tokens"]
    cmpl = c.completions.create(model="m", prompt=ids, max_tokens=1, temperature=0, extra_body={"prompt_logprobs": 2})
    for a, b in zip(pl[1:], cmpl.choices[0].prompt_logprobs[1:]):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k]["logprob"] == pytest.approx(b[k]["logprob"], abs=1e-5)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="m", messages=messages, max_tokens=2, stream=True, extra_body={"prompt_logprobs": 2})
    assert "prompt_logprobs" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model="m", prompt="x", max_tokens=1, extra_body={"prompt_logprobs": 21})


def test_streamed_echo_with_logprobs_carries_the_prompt_first(llama):
    c = client(llama)
    kw = dict(model="m", prompt="The quick brown fox", echo=True, logprobs=2, max_tokens=3, temperature=0)
    whole = c.completions.create(**kw).choices[0].logprobs
    chunks = [ch for ch in c.completions.create(stream=True, **kw) if ch.choices]
    tokens, lps = [], []
    for ch in chunks:
        if ch.choices[0].logprobs:
            tokens += ch.choices[0].logprobs.tokens
            lps += ch.choices[0].logprobs.token_logprobs
    assert tokens == whole.tokens
    assert lps[0] is None
    assert lps[1:] == pytest.approx(whole.token_logprobs[1:], abs=1e-5)


def test_chat_top_logprobs_streamed_and_whole(llama):
    c = client(llama)
    kw = dict(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0, logprobs=True, top_logprobs=3,
              extra_body={"ignore_eos": True})
    whole = c.chat.completions.create(**kw).choices[0].logprobs.content
    assert len(whole) == 4
    for t in whole:
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.top_logprobs[0].logprob >= t.logprob - 1e-6, "greedy: the chosen token is the best"
    streamed = [t for ch in c.chat.completions.create(stream=True, **kw) if ch.choices and ch.choices[0].logprobs
                for t in ch.choices[0].logprobs.content]
    assert [t.token for t in streamed] == [t.token for t in whole]
    assert [t.logprob for t in streamed] == pytest.approx([t.logprob for t in whole], abs=1e-5)


def test_max_logprobs_flag_bounds_logprobs_and_allows_more_than_twenty(pagoda):
    """`--max-logprobs 100` (vLLM's flag): 100 alternatives per token come back best first and begin with the
    20 of a default request; 101 is a 400 naming the parameter and the flag, in chat and in completions."""
    s = start(pagoda, MODELS / "tiny-llama3", ["--dtype", "float32", "--max-model-len", "256", "--max-logprobs", "100"])
    try:
        def top(k):
            status, body = post(s, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
                                                           "temperature": 0, "logprobs": True, "top_logprobs": k})
            assert status == 200, body
            return body["choices"][0]["logprobs"]["content"]
        many, twenty = top(100), top(20)
        assert [t["token"] for t in many] == [t["token"] for t in twenty]
        for m, t in zip(many, twenty):
            lps = [a["logprob"] for a in m["top_logprobs"]]
            assert len(lps) == 100 and lps == sorted(lps, reverse=True)
            assert [a["token"] for a in m["top_logprobs"][:20]] == [a["token"] for a in t["top_logprobs"]]
            assert lps[:20] == pytest.approx([a["logprob"] for a in t["top_logprobs"]], abs=1e-5)
        status, body = post(s, "/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
                                                       "logprobs": True, "top_logprobs": 101})
        assert status == 400 and body["error"]["param"] == "top_logprobs" and "--max-logprobs" in body["error"]["message"], body
        status, body = post(s, "/v1/completions", {"prompt": "Hi", "max_tokens": 1, "logprobs": 101})
        assert status == 400 and body["error"]["param"] == "logprobs", body
        status, body = post(s, "/v1/completions", {"prompt": "Hi there", "max_tokens": 1, "prompt_logprobs": 101})
        assert status == 400 and body["error"]["param"] == "prompt_logprobs", body
    finally:
        s.stop()


# --- content parts and usage chunks ----------------------------------------------------------

PARTS = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.jinja")))
def test_streamed_chat_with_content_parts_and_include_usage_on_every_template(llama, template):
    src = (TEMPLATES / template).read_text()
    c = client(llama)
    extra = {"chat_template": src, "ignore_eos": True}
    # Every conformance template prints content as a string: parts are joined with "\n" (vLLM).
    status, parts_tok = post(llama, "/tokenize", {"messages": [{"role": "user", "content": PARTS}], "chat_template": src})
    assert status == 200, parts_tok
    status, text_tok = post(llama, "/tokenize", {"messages": [{"role": "user", "content": "Hello\nworld"}], "chat_template": src})
    assert parts_tok["tokens"] == text_tok["tokens"]
    chunks = list(c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": PARTS}], max_tokens=4, temperature=0, stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True}, extra_body=extra))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == parts_tok["count"] and last.usage.completion_tokens == 4
    assert last.usage.total_tokens == last.usage.prompt_tokens + 4
    assert all(ch.usage is not None for ch in chunks), "continuous_usage_stats: every chunk has usage"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert chunks[-2].choices[0].finish_reason == "length"
    whole = c.chat.completions.create(model="m", messages=[{"role": "user", "content": PARTS}], max_tokens=4, temperature=0,
                                      extra_body=extra)
    assert whole.choices[0].message.content == text


def test_prompt_logprobs_beyond_the_entry_bound_are_a_400(llama):
    """(prompt tokens - 1) x (prompt_logprobs + 1) above 2^20 is refused before the engine sees it;
    below it the same prompt length with fewer alternatives is judged by the context length only."""
    prompt = [1] * 50_000  # 49,999 x 21 > 2^20; also far beyond --max-model-len
    status, body = post(llama, "/v1/completions", {"prompt": prompt, "max_tokens": 1, "prompt_logprobs": 20})
    assert status == 400 and body["error"]["param"] == "prompt_logprobs" and "1048576" in body["error"]["message"], body
    status, body = post(llama, "/v1/completions", {"prompt": prompt, "max_tokens": 1, "prompt_logprobs": 19})
    assert status == 400 and "maximum context length" in body["error"]["message"], body
    status, body = post(llama, "/v1/completions", {"prompt": "Hello", "max_tokens": 1, "prompt_logprobs": 21})
    assert status == 400 and body["error"]["param"] == "prompt_logprobs", body
    status, body = post(llama, "/v1/completions", {"prompt": "Hello there", "max_tokens": 1, "prompt_logprobs": 2})
    assert status == 200 and len(body["choices"][0]["prompt_logprobs"]) > 1, body


def test_completions_stream_include_usage(llama):
    chunks = list(client(llama).completions.create(model="m", prompt="Hello", max_tokens=3, temperature=0, stream=True,
                                                   stream_options={"include_usage": True}, extra_body={"ignore_eos": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3
    assert all(ch.usage is None for ch in chunks[:-1])


def test_template_that_iterates_parts_gets_parts(llama):
    src = "{% for m in messages %}{{ m.role }}:{% for p in m['content'] %}[{{ p['text'] }}]{% endfor %};{% endfor %}"
    for content, rendered in [(PARTS, "user:[Hello][world];"), ("Hi", "user:[Hi];")]:
        status, tok = post(llama, "/tokenize", {"messages": [{"role": "user", "content": content}], "chat_template": src,
                                                "add_generation_prompt": False})
        assert status == 200, tok
        status, text = post(llama, "/detokenize", {"tokens": tok["tokens"]})
        assert text["prompt"] == rendered


def test_media_parts_are_a_400_naming_the_type(llama):
    with pytest.raises(openai.BadRequestError) as e:
        client(llama).chat.completions.create(model="m", max_tokens=2, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    assert "'image_url'" in str(e.value)


# --- reasoning ---------------------------------------------------------------------------------

def raw_output(server, messages, kwargs, max_tokens):
    """The model's own text for the chat prompt, through completions (no reasoning parser there)."""
    status, tok = post(server, "/tokenize", {"messages": messages, "chat_template_kwargs": kwargs})
    assert status == 200, tok
    r = client(server).completions.create(model="m", prompt=tok["tokens"], max_tokens=max_tokens, temperature=0,
                                          extra_body={"ignore_eos": True, "skip_special_tokens": True})
    return tok, r.choices[0].text


def test_reasoning_split_whole_and_streamed_when_the_template_opens_think(r1):
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    kwargs = {"enable_thinking": True}
    tok, raw = raw_output(r1, messages, kwargs, 12)
    status, prompt = post(r1, "/detokenize", {"tokens": tok["tokens"]})
    assert prompt["prompt"].endswith("<｜Assistant｜><think>\n"), "the template opened <think> in the prompt"
    c = client(r1)
    kw = dict(model="m", messages=messages, max_tokens=12, temperature=0, extra_body={"chat_template_kwargs": kwargs, "ignore_eos": True})
    whole = c.chat.completions.create(**kw).choices[0].message
    if "</think>" in raw:  # a random model rarely writes it; the split must then follow it
        reasoning, _, answer = raw.partition("</think>")
        assert whole.reasoning_content == reasoning.replace("<think>", "", 1) and whole.content == (answer or None)
    else:
        assert whole.reasoning_content == raw.replace("<think>", "", 1) and whole.content is None
    assert whole.reasoning_content
    chunks = list(c.chat.completions.create(stream=True, **kw))
    streamed_reasoning = "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or "" for ch in chunks if ch.choices)
    streamed_content = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed_reasoning == whole.reasoning_content
    assert streamed_content == (whole.content or "")


def test_include_reasoning_false_omits_the_reasoning_streamed_and_whole(r1):
    """vLLM's include_reasoning: false leaves reasoning_content out; the content stays the same."""
    # A regex steers the random model through "</think>" so both parts are non-empty.
    body = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 40, "temperature": 0,
            "guided_regex": "[a-z]{2,6}</think>[A-Z]{2,6}"}
    status, whole = post(r1, "/v1/chat/completions", body)
    assert status == 200, whole
    message = whole["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"] and message["content"].isupper(), message
    status, hidden = post(r1, "/v1/chat/completions", {**body, "include_reasoning": False})
    assert status == 200, hidden
    assert "reasoning_content" not in hidden["choices"][0]["message"]
    assert hidden["choices"][0]["message"]["content"] == message["content"]
    c = client(r1)
    kw = dict(model="m", messages=body["messages"], max_tokens=40, temperature=0, stream=True,
              extra_body={"guided_regex": body["guided_regex"], "include_reasoning": False})
    chunks = [ch for ch in c.chat.completions.create(**kw) if ch.choices]
    assert not any(getattr(ch.choices[0].delta, "reasoning_content", None) for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == message["content"]
    shown = [ch for ch in c.chat.completions.create(**{**kw, "extra_body": {"guided_regex": body["guided_regex"]}}) if ch.choices]
    assert "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or "" for ch in shown) == message["reasoning_content"]


def test_reasoning_parser_leaves_completions_alone(r1):
    r = client(r1).completions.create(model="m", prompt="Hello", max_tokens=4, temperature=0)
    assert not hasattr(r.choices[0], "reasoning_content") or r.choices[0].reasoning_content is None


@pytest.mark.parametrize("flag, value, known", [("--reasoning-parser", "nope", "deepseek_r1"),
                                                ("--chat-template-content-format", "parts", "openai"),
                                                ("--chat-template", "/nonexistent/template.jinja", "neither a file nor a template")])
def test_bad_chat_flags_are_one_line_errors(pagoda, flag, value, known):
    r = subprocess.run([pagoda, "serve", str(MODELS / "tiny-qwen2"), flag, value], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    first = (r.stderr or r.stdout).strip().splitlines()[0]
    assert flag in first and value in first and known in first, r.stderr


def test_qwen3_parser_leaves_output_without_a_think_block_as_content(pagoda):
    s = start(pagoda, MODELS / "tiny-qwen2", ["--max-model-len", "512", "--chat-template", str(TEMPLATES / "Qwen-Qwen3-0.6B.jinja"),
                                              "--reasoning-parser", "qwen3"])
    try:
        messages = [{"role": "user", "content": "Hi"}]
        kwargs = {"enable_thinking": False}
        tok, raw = raw_output(s, messages, kwargs, 8)
        status, prompt = post(s, "/detokenize", {"tokens": tok["tokens"]})
        assert prompt["prompt"].endswith("<think>\n\n</think>\n\n"), "enable_thinking reached the template"
        kw = dict(model="m", messages=messages, max_tokens=8, temperature=0,
                  extra_body={"chat_template_kwargs": kwargs, "ignore_eos": True})
        message = client(s).chat.completions.create(**kw).choices[0].message
        if "<think>" in raw and "</think>" in raw:
            assert message.reasoning_content is not None
        else:
            assert message.content == raw and getattr(message, "reasoning_content", None) is None
        chunks = list(client(s).chat.completions.create(stream=True, **kw))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == (message.content or "")
    finally:
        s.stop()
