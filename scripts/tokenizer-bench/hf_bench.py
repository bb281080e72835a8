"""Encodes the benchmark documents one by one with Hugging Face `tokenizers` on one thread."""
import os, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer
tok = Tokenizer.from_file(os.path.join(sys.argv[1], "tokenizer.json"))
docs = open(sys.argv[2], encoding="utf-8", newline="").read().split("\n\x1e\n")
nbytes = sum(len(d.encode("utf-8")) for d in docs)
best = None
for run in range(3):
    t0 = time.perf_counter()
    n, s = 0, 0
    for d in docs:
        ids = tok.encode(d, add_special_tokens=False).ids
        n += len(ids); s += sum(ids)
    dt = time.perf_counter() - t0
    best = dt if best is None else min(best, dt)
    print(f"hf-tokenizers run {run}: {dt:.3f} s")
print(f"hf-tokenizers {os.path.basename(sys.argv[1].rstrip('/'))}: {nbytes/best/1e6:.2f} MB/s, {n/best/1e6:.3f} M tokens/s (best of 3; {n} tokens, id sum {s})")
