#!/usr/bin/env python3
"""Writes the seed corpora of Pagoda's fuzz targets (Sources/PagodaFuzzing/FuzzTarget.swift) next to this script,
one folder per target. Seeds are small valid (and a few invalid) inputs the fuzzer mutates; files the fuzzer
adds (`scripts/fuzz.sh`) and every crash input found, renamed `regression-*`, live beside them and are replayed
by PagodaFuzzingTests in CI. Run from anywhere: python3 Tests/FuzzCorpus/make_seeds.py
Needs only the standard library; reads the chat templates of ../shared/conformance when present."""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONFORMANCE = os.environ.get("PAGODA_CONFORMANCE", os.path.join(ROOT, "..", "shared", "conformance"))


def put(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


def j(v):
    return json.dumps(v, ensure_ascii=False)


# OpenAI request bodies.
put("openai-completion", "plain", j({"model": "m", "prompt": "San Francisco is a", "max_tokens": 7, "temperature": 0}))
put("openai-completion", "batch", j({"model": "m", "prompt": ["a", "b"], "n": 2, "stream": True,
                                      "stream_options": {"include_usage": True}, "stop": ["\n"], "logprobs": 2}))
put("openai-completion", "token-ids", j({"prompt": [[1, 2, 3], [4]], "max_tokens": 1, "logit_bias": {"5": -100},
                                         "seed": 7, "ignore_eos": True, "top_k": 3, "min_p": 0.1}))
put("openai-completion", "odd", '{"prompt": "\\ud83d\\ude00 \\u0000", "max_tokens": 1e3, "unknown": {"a": [null, true]}}')
put("openai-chat", "plain", j({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}))
put("openai-chat", "parts", j({"messages": [{"role": "system", "content": "x"},
                                            {"role": "user", "content": [{"type": "text", "text": "a"}]}],
                               "stream": True, "logprobs": True, "top_logprobs": 2, "max_completion_tokens": 3}))
put("openai-chat", "tools", j({"messages": [{"role": "user", "content": "w"}], "tool_choice": "none",
                               "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                               "chat_template_kwargs": {"enable_thinking": False}, "add_generation_prompt": True}))
put("openai-tokenize", "prompt", j({"model": "m", "prompt": "hello", "add_special_tokens": True}))
put("openai-tokenize", "messages", j({"messages": [{"role": "user", "content": "hello"}], "add_generation_prompt": True}))
os.makedirs(os.path.join(HERE, "proxy-routing"), exist_ok=True)
for src in ["openai-completion/plain", "openai-completion/token-ids", "openai-chat/plain", "openai-chat/parts"]:
    shutil.copy(os.path.join(HERE, src), os.path.join(HERE, "proxy-routing", src.replace("/", "-")))

# Safetensors: an 8-byte little-endian header length, a JSON header, the data.
def safetensors(tensors, extra=b""):
    header, data, offset = {"__metadata__": {"format": "pt"}}, b"", 0
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        data += payload
        offset += len(payload)
    h = j(header).encode()
    return struct.pack("<Q", len(h)) + h + data + extra


put("safetensors", "two-tensors", safetensors({"a.weight": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                                               "b": ("BF16", [3], b"\x80\x3f" * 3)}))
put("safetensors", "empty", safetensors({}))
put("safetensors", "truncated", safetensors({"a": ("F16", [4], b"\x00\x3c" * 4)})[:-3])

# GGUF: the few-KB file written by llama.cpp's gguf-py for the GGUF tests, and a truncated copy.
gguf = open(os.path.join(ROOT, "Tests", "GGUFReference", "tiny_gguf_v3.gguf"), "rb").read()
put("gguf", "tiny-v3", gguf)
put("gguf", "tiny-v3-head", gguf[:200])

# tokenizer.json: small byte-level BPE and Metaspace pipelines in the shape transformers writes.
byte_level = {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": [{"id": 9, "content": "<|im_start|>", "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}| ?\\p{L}+| ?[^\\s\\p{L}\\p{N}]+|\\s+"}, "behavior": "Isolated",
         "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "ll": 5, "Hell": 6, "Hello": 7, "Ġ": 8},
              "merges": ["H e", "l l", "He ll", "Hell o"]},
}
put("tokenizer-json", "byte-level-bpe", j(byte_level))
metaspace = json.loads(j(byte_level))
metaspace["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                                 {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
metaspace["pre_tokenizer"] = None
metaspace["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                        {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [10], "tokens": ["<s>"]}}}
metaspace["decoder"] = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                         {"type": "ByteFallback"}, {"type": "Fuse"},
                                                         {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
metaspace["model"]["byte_fallback"] = True
metaspace["model"]["vocab"].update({"<s>": 10, "<0x41>": 11, "▁": 12})
put("tokenizer-json", "metaspace-bpe", j(metaspace))

# Jinja chat templates: the conformance set's (real models') and a few constructs on their own.
templates = os.path.join(CONFORMANCE, "chat_templates")
if os.path.isdir(templates):
    for name in sorted(os.listdir(templates)):
        if name.endswith(".jinja"):
            put("jinja-template", name, open(os.path.join(templates, name), "rb").read())
put("jinja-template", "constructs", "{%- set ns = namespace(n=0) -%}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
    "{{ m.role | upper }}: {{ m['content'] | trim }}{% if not loop.last %}\n{% endif %}{% endfor %}"
    "{{ ns.n }}{{ 'x' * 3 }}{{ [1, 2, 3] | join(',') }}{{ {'a': 1} | tojson }}{% macro f(x=1) %}{{ x }}{% endmacro %}{{ f(2) }}"
    "{{ messages[0].content.split(' ')[0] if messages else raise_exception('none') }}")

# Engine-RPC frame bodies: kind byte + payload (EngineRPCFrame).
handshake = {"protocolVersion": 6, "model": "m", "modelIdentity": "fnv1a64:00", "address": "127.0.0.1:1", "numBlocks": 8, "blockSize": 16, "maxModelLen": 64, "vocabSize": 100,
             "maxLogprobs": 20, "eosTokenIds": [2], "dataParallelRank": 0, "dataParallelSize": 1, "pid": 1}
put("engine-rpc-frame", "hello", bytes([1]) + j(handshake).encode())
put("engine-rpc-frame", "abort", bytes([4]) + j(["a", "b"]).encode())
put("engine-rpc-frame", "utility", bytes([7]) + j({"callId": 1, "method": "reset_prefix_cache", "arguments": []}).encode())
put("engine-rpc-frame", "failure", bytes([10]) + "no model".encode())
put("engine-rpc-frame", "outputs", bytes([5]) + struct.pack("<I", 0))
# KV transfer messages after the handshake (KVBlockWire): u32 little-endian length + JSON, then the blocks. The
# targets' producer holds blocks [1, 2] of request "fuzz-req" in a cache of 2 layers, 2-token blocks, 2 KV heads of
# 4 floats (KVWirePeerInput).
def message(v):
    body = j(v).encode()
    return struct.pack("<I", len(body)) + body


read = {"requestId": "fuzz-req", "blockIds": [1, 2], "numLayers": 2, "blockSize": 2, "headDim": 4, "headStart": 0,
        "headCount": 2, "layerStart": 0, "connections": 1}
put("kv-transfer-request", "read", message(read))
put("kv-transfer-request", "split-read", message(dict(read, layerStart=1, layerCount=1, connections=2)))
put("kv-transfer-request", "read-one-head", message(dict(read, headStart=1, headCount=1, blockIds=[2])))
put("kv-transfer-request", "end-hold", message(dict(read, headCount=0)))
put("kv-transfer-request", "unknown-request", message(dict(read, requestId="other")))
put("kv-transfer-request", "layout-mismatch", message(dict(read, numLayers=3)))
put("kv-transfer-request", "same-host", message(dict(read, sameHost={"bootId": "b", "pidNamespace": "pid:[1]"})) +
    message({"copied": False}))
put("kv-transfer-request", "too-long", struct.pack("<I", 0xFFFFFFFF) + b"{")
# Found while writing the target: headStart + headCount overflowed (a trap) in the producer's layout check.
put("kv-transfer-request", "regression-head-count-overflow",
    message(dict(read, headStart=1, headCount=9223372036854775807)))
# More block ids than held (repeats of a held one): refused, instead of streaming thousands of copies.
put("kv-transfer-request", "regression-repeated-blocks", message(dict(read, blockIds=[1] * 4000)))
blocks = bytes(2 * 2 * 2 * 2 * 2 * 4 * 4)  # layers x K/V x blocks x tokens x heads x floats x 4 bytes
put("kv-transfer-reply", "ok-stream", message({"ok": True}) + blocks)
put("kv-transfer-reply", "refused", message({"ok": False, "error": "request fuzz-req is not held here"}))
put("kv-transfer-reply", "short-stream", message({"ok": True}) + blocks[:100])
offer = {"pid": 1, "bases": [4096, 8192, 12288, 16384], "blockFloats": 16, "headStart": 0, "headsLocal": 2}
put("kv-transfer-reply", "offer-then-stream", message({"ok": True, "sameHostCopy": offer}) + blocks)
# Same-host offers whose numbers overflowed (traps) when the consumer computed addresses from them.
put("kv-transfer-reply", "regression-offer-heads-overflow",
    message({"ok": True, "sameHostCopy": dict(offer, headsLocal=2 ** 62, blockFloats=0)}))
put("kv-transfer-reply", "regression-offer-head-start-overflow",
    message({"ok": True, "sameHostCopy": dict(offer, headStart=-(2 ** 62))}))
put("kv-transfer-reply", "regression-offer-address-overflow",
    message({"ok": True, "sameHostCopy": dict(offer, bases=[2 ** 64 - 1] * 4)}))

# The handshake (PeerAuthentication): "PGAUTH01", a 32-byte nonce, then a 32-byte proof (from a connector) or a
# verdict byte and a 32-byte proof (from a listener). No seed passes (proofs need the secret and a fresh nonce).
nonce = bytes(range(32))
put("peer-auth-handshake", "connector", b"PGAUTH01" + nonce + bytes(32))
put("peer-auth-handshake", "listener-accepts", b"PGAUTH01" + nonce + b"\x00" + bytes(32))
put("peer-auth-handshake", "listener-refuses", b"PGAUTH01" + nonce + b"\x01" + bytes(32))
put("peer-auth-handshake", "truncated", b"PGAUTH01" + nonce[:5])
put("peer-auth-handshake", "no-handshake", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
print("seeds written under", HERE)
