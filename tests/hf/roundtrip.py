"""Opens a cptrain checkpoint with Hugging Face `transformers`, as a user would.

Reads a JSON spec on stdin:
  {"checkpoint": DIR, "text": STR, "tokens": [ids], "logits_out": FILE, "save_to": DIR}
- `GPT2LMHeadModel.from_pretrained(checkpoint)` and
  `AutoTokenizer.from_pretrained(checkpoint)`, unchanged;
- checks that the tokenizer encodes `text` to `tokens` (cptrain's ids);
- writes the model's logits for `tokens` to `logits_out` (little-endian f32,
  [len(tokens), vocab_size], row-major) for the caller to compare;
- `save_pretrained(save_to)` (safetensors), for use as cptrain's `model.init`.
Prints one JSON object: {"vocab_size", "n_positions", "wpe_rows", "loss"}.
"""

import json
import sys

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel


def main():
    spec = json.load(sys.stdin)
    model = GPT2LMHeadModel.from_pretrained(spec["checkpoint"], dtype=torch.float32)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(spec["checkpoint"])
    ids = tokenizer(spec["text"])["input_ids"]
    if ids != spec["tokens"]:
        sys.exit(f"AutoTokenizer gave {ids}, cptrain {spec['tokens']}")
    tokens = torch.tensor([spec["tokens"]])
    with torch.no_grad():
        out = model(tokens, labels=tokens)
    logits = out.logits[0].contiguous().numpy().astype("<f4")
    with open(spec["logits_out"], "wb") as f:
        f.write(logits.tobytes())
    model.save_pretrained(spec["save_to"], safe_serialization=True)
    print(
        json.dumps(
            {
                "vocab_size": model.config.vocab_size,
                "n_positions": model.config.n_positions,
                "wpe_rows": model.transformer.wpe.weight.shape[0],
                "loss": out.loss.item(),
            }
        )
    )


if __name__ == "__main__":
    main()
