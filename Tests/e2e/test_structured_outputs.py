"""Structured outputs end to end (issue 19, point 1) on the repository's random-weight tiny-qwen3: JSON
schemas, json_object, regexes, choices and GBNF grammars constrain decoding so the output parses and
validates, where the same request without the constraint gives text that does not; the openai
client's `parse` with a Pydantic model; unsupported schema keywords are a 400 naming them."""
import json
import re
from typing import Annotated, List, Literal

import openai
import pydantic
import pytest

from conftest import free_port
from serve_process import ServeProcess

SERVED = "tiny"


@pytest.fixture(scope="module")
def server(pagoda, small_model):
    s = ServeProcess(pagoda, small_model, free_port(), ["--served-model-name", SERVED, "--max-model-len", "1024", "--seed", "0"])
    try:
        s.wait_healthy()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=300)


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer"},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 1, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10}, "zip": {"type": ["string", "null"], "maxLength": 5}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "active": {"type": "boolean"},
    },
    "required": ["name", "age", "role", "tags", "address", "active"],
    "additionalProperties": False,
}


def check_person(doc):
    """What the schema demands, checked by hand (no validator package needed)."""
    assert isinstance(doc, dict) and set(doc) == set(SCHEMA["required"]), doc
    assert isinstance(doc["name"], str) and len(doc["name"]) <= 12
    assert isinstance(doc["age"], int) and not isinstance(doc["age"], bool)
    assert doc["role"] in ("admin", "user", "guest")
    assert isinstance(doc["tags"], list) and 1 <= len(doc["tags"]) <= 3 and all(isinstance(t, str) and len(t) <= 6 for t in doc["tags"])
    assert set(doc["address"]) == {"city", "zip"} and isinstance(doc["address"]["city"], str)
    assert doc["address"]["zip"] is None or (isinstance(doc["address"]["zip"], str) and len(doc["address"]["zip"]) <= 5)
    assert isinstance(doc["active"], bool)


def parses(text):
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


MESSAGES = [{"role": "user", "content": "Describe a user as JSON."}]


def test_json_schema_chat_yields_valid_json_where_free_text_does_not(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, response_format=fmt, max_tokens=600, n=3,
                                       temperature=1.0, seed=7)
    for c in r.choices:
        assert c.finish_reason == "stop", c
        check_person(json.loads(c.message.content))
    free = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=60, n=3, temperature=1.0, seed=7)
    assert not any(parses(c.message.content) for c in free.choices), [c.message.content for c in free.choices]


def test_json_schema_greedy_and_streamed(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}}
    whole = client.chat.completions.create(model=SERVED, messages=MESSAGES, response_format=fmt, max_tokens=600, temperature=0)
    check_person(json.loads(whole.choices[0].message.content))
    stream = client.chat.completions.create(model=SERVED, messages=MESSAGES, response_format=fmt, max_tokens=600, temperature=0,
                                            stream=True)
    text, finish = "", None
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert finish == "stop" and text == whole.choices[0].message.content


def test_json_object_and_guided_json_on_completions(client):
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, response_format={"type": "json_object"}, max_tokens=300,
                                       temperature=0.7, seed=3)
    c = r.choices[0]
    # Any JSON object is allowed, so a random model may nest until max_tokens: only a finished one must parse.
    assert c.message.content.startswith("{")
    if c.finish_reason == "stop":
        assert isinstance(json.loads(c.message.content), dict)
    comp = client.completions.create(model=SERVED, prompt="JSON:", max_tokens=600, temperature=1.0, seed=11,
                                     extra_body={"guided_json": SCHEMA})
    assert comp.choices[0].finish_reason == "stop"
    check_person(json.loads(comp.choices[0].text))
    comp = client.completions.create(model=SERVED, prompt="JSON:", max_tokens=600, temperature=1.0, seed=12,
                                     extra_body={"structured_outputs": {"json": json.dumps(SCHEMA)}})
    check_person(json.loads(comp.choices[0].text))


REGEX = r"\d{3}-[a-z]{2,4}(\.[A-Z]{1,5})?"


def test_regex_constrains_completions_and_chat(client):
    for seed in range(3):
        r = client.completions.create(model=SERVED, prompt="Code:", max_tokens=40, temperature=1.0, seed=seed,
                                      extra_body={"guided_regex": REGEX})
        assert re.fullmatch(REGEX, r.choices[0].text), r.choices[0].text
        assert r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=40, temperature=1.0, seed=5,
                                       extra_body={"structured_outputs": {"regex": REGEX}})
    assert re.fullmatch(REGEX, r.choices[0].message.content)
    free = client.completions.create(model=SERVED, prompt="Code:", max_tokens=10, temperature=1.0, seed=0, n=3)
    assert not any(re.fullmatch(REGEX, c.text) for c in free.choices)


def test_choice_constrains_output(client):
    options = ["alpha", "beta gamma", "delta"]
    seen = set()
    for seed in range(4):
        r = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=20, temperature=1.0, seed=seed,
                                           extra_body={"guided_choice": options})
        assert r.choices[0].message.content in options and r.choices[0].finish_reason == "stop"
        seen.add(r.choices[0].message.content)
    r = client.completions.create(model=SERVED, prompt="Pick:", max_tokens=20, temperature=0,
                                  extra_body={"structured_outputs": {"choice": options}})
    assert r.choices[0].text in options
    free = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=5, temperature=1.0, seed=0, n=3)
    assert not any(c.message.content in options for c in free.choices)


GRAMMAR = r'''
root   ::= "(" expr ")" ws? "=" ws? num
expr   ::= num (op num){0,3}
op     ::= "+" | "-" | "*"
num    ::= [1-9] [0-9]?
ws     ::= " "
'''


def test_gbnf_grammar(client):
    pattern = r"\([1-9][0-9]?([+\-*][1-9][0-9]?){0,3}\) ?= ?[1-9][0-9]?"
    for seed in range(3):
        r = client.completions.create(model=SERVED, prompt="Sum:", max_tokens=40, temperature=1.0, seed=seed,
                                      extra_body={"guided_grammar": GRAMMAR})
        assert re.fullmatch(pattern, r.choices[0].text), r.choices[0].text


class Address(pydantic.BaseModel):
    city: str = pydantic.Field(max_length=10)
    country: Literal["NO", "SE", "DK"]


class Person(pydantic.BaseModel):
    name: str = pydantic.Field(max_length=12)
    age: int
    tags: List[Annotated[str, pydantic.Field(max_length=8)]] = pydantic.Field(max_length=2)
    address: Address


def test_openai_parse_with_pydantic_model(client):
    r = client.beta.chat.completions.parse(model=SERVED, messages=MESSAGES, response_format=Person, max_tokens=600,
                                           temperature=1.0, seed=4)
    person = r.choices[0].message.parsed
    assert isinstance(person, Person) and person.address.country in ("NO", "SE", "DK")
    assert len(person.tags) <= 2 and len(person.name) <= 12


def test_unsupported_schema_keyword_is_a_400_naming_it(client, server):
    bad = {"type": "object", "properties": {"code": {"type": "string", "pattern": "[A-Z]+"}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=5, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": bad}})
    assert e.value.body["param"] == "response_format" and "'pattern'" in e.value.body["message"]
    status, _, data = server.post("/v1/completions", {"model": SERVED, "prompt": "x", "max_tokens": 2,
                                                      "guided_json": {"type": "integer", "minimum": 3}})
    body = json.loads(data)
    assert status == 400 and body["error"]["param"] == "guided_json" and "'minimum'" in body["error"]["message"]
    # The server still serves.
    assert client.completions.create(model=SERVED, prompt="x", max_tokens=2).choices[0].text is not None


def test_min_tokens_beyond_the_grammar_end_stops_where_the_grammar_ends(client, server):
    """min_tokens past the point where the grammar can only end: the grammar wins, the answer is the
    document and finishes with "stop" (not garbage tokens up to min_tokens), streamed and not."""
    options = ["yes", "no"]
    for seed in range(3):
        r = client.completions.create(model=SERVED, prompt="Answer:", max_tokens=40, temperature=1.0, seed=seed,
                                      extra_body={"guided_choice": options, "min_tokens": 30})
        c = r.choices[0]
        assert c.text in options and c.finish_reason == "stop", c
        assert r.usage.completion_tokens < 30
    r = client.chat.completions.create(model=SERVED, messages=MESSAGES, max_tokens=200, temperature=1.0, seed=5,
                                       extra_body={"min_tokens": 150, "guided_json": {
                                           "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}})
    assert json.loads(r.choices[0].message.content) in ({"ok": True}, {"ok": False}) and r.choices[0].finish_reason == "stop"
    chunks = list(client.completions.create(model=SERVED, prompt="Answer:", max_tokens=40, temperature=1.0, seed=0, stream=True,
                                            extra_body={"guided_choice": options, "min_tokens": 30}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) in options
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]
    # Where the grammar may still continue, min_tokens holds EOS off: a run of digits is at least 12 tokens long.
    r = client.completions.create(model=SERVED, prompt="Number:", max_tokens=40, temperature=1.0, seed=1,
                                  extra_body={"guided_regex": "[0-9]+", "min_tokens": 12})
    assert re.fullmatch("[0-9]+", r.choices[0].text) and r.usage.completion_tokens >= 12
