"""Builds a mixed multilingual benchmark text (~4 MB) from the conformance cases and chat templates.
Documents are separated by a line holding only \\x1e (record separator). Deterministic."""
import glob, json, os, random, sys
conf = os.environ.get("PAGODA_CONFORMANCE", os.path.join(os.path.dirname(__file__), "../../../shared/conformance"))
pieces = []
for f in sorted(glob.glob(os.path.join(conf, "tokenizers/*/cases.jsonl"))):
    for line in open(f, encoding="utf-8"):
        pieces.append(json.loads(line)["text"])
for f in sorted(glob.glob(os.path.join(conf, "chat_templates/*.jinja"))) + [os.path.join(conf, "README.md")]:
    pieces.append(open(f, encoding="utf-8").read())
for line in open(os.path.join(conf, "chat_templates/cases.jsonl"), encoding="utf-8"):
    pieces.append(json.loads(line)["rendered"])
rng = random.Random(1234)
docs, size = [], 0
target = int(sys.argv[2]) if len(sys.argv) > 2 else 4_000_000
while size < target:
    doc = " ".join(rng.choice(pieces) for _ in range(rng.randint(5, 40)))
    doc = doc.replace("\x1e", "")
    docs.append(doc)
    size += len(doc.encode("utf-8"))
open(sys.argv[1], "w", encoding="utf-8", newline="").write("\n\x1e\n".join(docs))
print(f"{len(docs)} documents, {size} bytes")
