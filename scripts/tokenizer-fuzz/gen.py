"""Random strings of tricky pieces (whitespace kinds, contractions, ſ, NFC pairs, Hangul jamo, scripts, emoji,
special-token text) with the ids and decodes of Hugging Face `tokenizers` 0.23.3: the oracle for
Tests/PagodaTokenizerTests/TokenizerDifferentialTests.swift. Regenerate: python3 scripts/tokenizer-fuzz/gen.py"""
import json, os, random
here = os.path.dirname(os.path.abspath(__file__))
conf = os.environ.get("PAGODA_CONFORMANCE", os.path.join(here, "../../../shared/conformance"))
from tokenizers import Tokenizer
random.seed(7)
atoms = ['\u2000', 'Ω', '\u2126', 'ガ', 'カ\u3099', '가\u11a8', 'Й', 'И\u0306', '\u0483', 'ά', '\u1f71', ' ', '  ', '\t', '\n', '\r', '\r\n', '\x0b', '\x0c', '\x85', '\xa0', '\u2000', '\u3000', '\u200b', '\ufeff', "'", "'s", "'S", "'ſ", "'re", "'RE", "'ll", "'Ll", "'ve", "'d", "'m", "'t", 's', 'ſ', 'a', 'Hello', 'world', 'ÀB', 'é', 'e\u0301', '\u0301', '1', '12', '1234567', '½', '①', 'Ⅳ', '٣٤', '中文', '日本語', '한국어', 'مرحبا', 'שלום', 'Привет', 'नमस्ते', 'สวัสดี', '😀', '👨‍👩‍👧', '🇫🇷', '!', '...', '?!', '<', '>', '|', '_', '-', '#', '$', '\x00', '\x07', '\x1b[31m', '<|im_start|>', '<|im_end|>', '<s>', '</s>', '<|user|>', '<|endoftext|>', '<|begin_of_text|>', '<tool_call>', '▁', 'Ġ', 'ﬁ', 'Ａ１', '\U0001F600', '\U00020000', '𝔘𝔫𝔦']
def rnd():
    return ''.join(random.choice(atoms) for _ in range(random.randint(1, 12)))
for name in ['llama3','qwen2','llama2','gpt2','phi3']:
    t = Tokenizer.from_file(os.path.join(conf, 'tokenizers', name, 'tokenizer.json'))
    with open(os.path.join(here, f'{name}.jsonl'), 'w', encoding='utf-8', newline='') as f:
        for i in range(300):
            s = rnd(); add = random.random() < 0.3
            ids = t.encode(s, add_special_tokens=add).ids
            f.write(json.dumps({"text": s, "add": add, "ids": ids, "decoded": t.decode(ids, skip_special_tokens=False), "skip": t.decode(ids, skip_special_tokens=True)}, ensure_ascii=False) + '\n')
