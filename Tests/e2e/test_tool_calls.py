"""Tool calling end to end (issue 19, point 2) on the random-weight tiny-qwen3 with vLLM's flags
(`--enable-auto-tool-choice --tool-call-parser hermes`): a named function and `required` force
parseable calls whose arguments fit the tool's schema (streamed and not); `auto` parses
`<tool_call>` blocks (steered here with a regex, since a random model would not write one); tool
results round-trip through every conformance chat template that takes tools; vLLM's errors."""
import json
import pathlib
import subprocess

import openai
import pytest

from conftest import CONFORMANCE, free_port
from serve_process import ServeProcess

SERVED = "tiny"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 12},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"]},
    },
}
TOOLS = [WEATHER, TIME]
MESSAGES = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def server(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(), ["--served-model-name", SERVED, "--max-model-len", "1024", "--seed", "0",
                                                        "--enable-auto-tool-choice", "--tool-call-parser", "hermes"])
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=300)


def check_weather_args(arguments):
    args = json.loads(arguments)
    assert set(args) == {"city", "unit", "days"}, args
    assert isinstance(args["city"], str) and len(args["city"]) <= 12
    assert args["unit"] in ("celsius", "fahrenheit") and isinstance(args["days"], int)
    return args


def collect_stream(stream):
    """Tool calls from streamed deltas, merged by index as OpenAI's clients do, plus content and finish reason."""
    calls, content, finish = {}, "", None
    for chunk in stream:
        for c in chunk.choices:
            content += c.delta.content or ""
            finish = c.finish_reason or finish
            for d in c.delta.tool_calls or []:
                call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = d.id or call["id"]
                if d.function.name:
                    call["name"] += d.function.name
                call["arguments"] += d.function.arguments or ""
    return [calls[k] for k in sorted(calls)], content, finish


def test_named_function_is_forced(client):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    whole = {}
    for seed in range(2):
        r = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, tool_choice=choice, max_tokens=300,
                                           temperature=1.0, seed=seed)
        calls = r.choices[0].message.tool_calls
        assert len(calls) == 1 and calls[0].function.name == "get_weather" and calls[0].type == "function" and calls[0].id
        whole[seed] = check_weather_args(calls[0].function.arguments)
        assert r.choices[0].finish_reason == "stop"  # OpenAI and vLLM finish a named call with "stop"
    # Streamed: the arguments arrive in pieces after a first delta with id and name; same seed, same call.
    stream = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, tool_choice=choice, max_tokens=300,
                                            temperature=1.0, seed=0, stream=True)
    calls, content, finish = collect_stream(stream)
    assert len(calls) == 1 and calls[0]["name"] == "get_weather" and calls[0]["id"] and finish == "stop"
    assert check_weather_args(calls[0]["arguments"]) == whole[0]


def test_required_calls_one_of_the_tools(client):
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=400,
                                       temperature=1.0, seed=1)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls" and c.message.tool_calls
    for call in c.message.tool_calls:
        assert call.function.name in ("get_weather", "get_time")
        args = json.loads(call.function.arguments)
        if call.function.name == "get_weather":
            check_weather_args(call.function.arguments)
        else:
            assert args["zone"] in ("UTC", "CET")
    stream = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=400,
                                            temperature=1.0, seed=1, stream=True)
    calls, content, finish = collect_stream(stream)
    assert finish == "tool_calls" and [x["name"] for x in calls] == [x.function.name for x in c.message.tool_calls]
    assert [json.loads(x["arguments"]) for x in calls] == [json.loads(x.function.arguments) for x in c.message.tool_calls]


# `auto` with the hermes parser: a regex makes the random model write a Qwen-style call after some text.
HERMES_REGEX = r'Sure[.!] <tool_call>\n\{"name": "get_time", "arguments": \{"zone": "(UTC|CET)"\}\}\n</tool_call>'


def test_auto_parses_hermes_tool_calls(client):
    extra = {"guided_regex": HERMES_REGEX}
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, max_tokens=100, temperature=1.0, seed=2,
                                       extra_body=extra)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", c
    assert c.message.content.startswith("Sure")
    assert [t.function.name for t in c.message.tool_calls] == ["get_time"]
    assert json.loads(c.message.tool_calls[0].function.arguments)["zone"] in ("UTC", "CET")
    stream = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, max_tokens=100, temperature=1.0, seed=2,
                                            extra_body=extra, stream=True)
    calls, content, finish = collect_stream(stream)
    assert finish == "tool_calls" and content.strip() == c.message.content.strip() and "<tool_call>" not in content
    assert [x["name"] for x in calls] == ["get_time"]
    # Plain text stays content.
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, tool_choice="auto", max_tokens=8,
                                       temperature=1.0, seed=3, extra_body={"guided_regex": "[a-z ]{5,20}"})
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


def test_tool_choice_errors(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, max_tokens=5,
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.body["param"] == "tool_choice" and "nope" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SERVED, messages=MESSAGES, tool_choice="required", max_tokens=5)


def test_auto_without_the_flag_is_a_400(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(), ["--served-model-name", SERVED, "--max-model-len", "256"])
    try:
        s.wait_healthy()
        c = openai.OpenAI(base_url=s.base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model=SERVED, messages=MESSAGES, tools=TOOLS, tool_choice="auto", max_tokens=5)
        assert "--enable-auto-tool-choice" in e.value.body["message"]
    finally:
        s.stop()


def test_unknown_parser_is_a_cli_error(pagoda, small_model):
    r = subprocess.run([pagoda, "serve", small_model, "--enable-auto-tool-choice", "--tool-call-parser", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--tool-call-parser" in r.stderr and "hermes" in r.stderr, r.stderr


TEMPLATES = ["Qwen-Qwen2.5-7B-Instruct", "Qwen-Qwen3-0.6B", "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct",
             "mistralai-Mistral-Nemo-Instruct-2407", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_tool_results_round_trip_through_chat_templates(server, client, name):
    template = (pathlib.Path(CONFORMANCE) / "chat_templates" / f"{name}.jinja").read_text()
    call_id = "abc123XYZ"  # 9 alphanumerics, as Mistral's template demands
    messages = [
        {"role": "user", "content": "What is the weather in Oslo?"},
        {"role": "assistant", "content": None if "Mistral" not in name else "",
         "tool_calls": [{"id": call_id, "type": "function",
                         "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "unit": "celsius", "days": 1}'}}]},
        {"role": "tool", "tool_call_id": call_id, "name": "get_weather", "content": "Sunny, 21 degrees"},
    ]
    status, _, data = server.post("/tokenize", {"model": SERVED, "messages": messages, "tools": TOOLS, "chat_template": template,
                                                "add_generation_prompt": True})
    body = json.loads(data)
    assert status == 200, body
    status, _, data = server.post("/detokenize", {"model": SERVED, "tokens": body["tokens"]})
    prompt = json.loads(data)["prompt"]
    assert "Sunny, 21 degrees" in prompt and "get_weather" in prompt and "Oslo" in prompt, prompt
    r = client.chat.completions.create(model=SERVED, messages=messages, tools=TOOLS, tool_choice="none", max_tokens=3,
                                       extra_body={"chat_template": template})
    assert r.choices[0].finish_reason in ("stop", "length")
