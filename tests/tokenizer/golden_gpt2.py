"""Golden GPT-2 token ids for the tokenizer test, computed independently of
cptrain with Hugging Face `tokenizers` (its byte-level BPE, fed GPT-2's
vocabulary and merges).

    pip install tokenizers
    python tests/tokenizer/golden_gpt2.py VOCAB_JSON MERGES_TXT > tests/data/gpt2_golden.json

VOCAB_JSON / MERGES_TXT: GPT-2's `vocab.json` (a.k.a. encoder.json) and
`merges.txt` (a.k.a. vocab.bpe), e.g. from a Hugging Face `gpt2` download or
the `assets/` folder of the tiktoken-rs crate.
"""
import json
import sys

from tokenizers import ByteLevelBPETokenizer

TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's fine, but we'd've known; you're right, isn't it?",
    "Numbers: 3.14159, 1,000,000 and 2024-12-02 at 17:30; ids 0x1F and 007.",
    "Whitespace   runs\tand\ttabs\n\n\nnew lines   \n  indented\r\nwindows line",
    "Grüße aus München! Ça va très bien, merci. ¿Dónde está la biblioteca?",
    "日本語のテキストと中文文本，还有한국어 문장도 있습니다。",
    "Русский текст и ελληνικά γράμματα, עברית ו العربية.",
    "Emoji 🙂🚀 and symbols ∑∫√ ≠ ≤ ≥ → ←; combining e\u0301 and ZWJ 👩‍💻.",
    "<|endoftext|> is plain text here, as is <|im_start|>.",
    "    def f(x):\n        return x**2  # code, with   spaces\n",
    "",
    " ",
    "a" * 50 + " " + "ab" * 20,
]


def main():
    vocab, merges = sys.argv[1], sys.argv[2]
    tokenizer = ByteLevelBPETokenizer(vocab, merges, add_prefix_space=False)
    cases = [{"text": t, "ids": tokenizer.encode(t).ids} for t in TEXTS]
    json.dump({"tokenizer": "gpt2", "source": "Hugging Face tokenizers " +
               __import__("tokenizers").__version__, "cases": cases},
              sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main()
