"""An independent PyTorch GPT-2 trainer for parity tests.

Reads a JSON spec on stdin: model shape, a Hugging Face-named safetensors file
to start from, a raw u16 token file, batch size, steps and AdamW settings. Trains
with the contracts of ARCHITECTURE.md (windows, mean loss, torch AdamW with decay
on 2-D weights only, global-norm clipping, warmup + cosine) and prints
{"losses": [...]} on stdout; the final weights go to spec["out"] (safetensors).
"""

import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def forward(p, tokens, n_layer, n_head):
    b, t = tokens.shape
    x = p["transformer.wte.weight"][tokens] + p["transformer.wpe.weight"][:t]
    for i in range(n_layer):
        h = f"transformer.h.{i}."
        a = layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"])
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(x.shape[-1], dim=-1)
        heads = lambda z: z.view(b, t, n_head, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        y = y.transpose(1, 2).reshape(b, t, -1)
        x = x + y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        m = layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"])
        m = F.gelu(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"], approximate="tanh")
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = layer_norm(x, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
    return x @ p["transformer.wte.weight"].T


def lr_at(step, o, steps):
    if step < o["warmup_steps"]:
        return o["lr"] * (step + 1) / o["warmup_steps"]
    progress = (step - o["warmup_steps"]) / (steps - o["warmup_steps"])
    return o["min_lr"] + 0.5 * (1 + math.cos(math.pi * progress)) * (o["lr"] - o["min_lr"])


def main():
    spec = json.load(sys.stdin)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    p = {k: v.float().requires_grad_() for k, v in load_file(spec["init"]).items()}
    data = np.fromfile(spec["tokens"], dtype="<u2").astype(np.int64)
    t, bsz, steps, o = spec["seq_len"], spec["batch_size"], spec["steps"], spec["optimizer"]
    windows = (len(data) - 1) // t
    decay = [v for k, v in p.items() if v.dim() == 2]
    no_decay = [v for k, v in p.items() if v.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
    )
    losses = []
    for step in range(steps):
        rows = [((step * bsz + j) % windows) * t for j in range(bsz)]
        batch = torch.tensor(np.stack([data[r : r + t + 1] for r in rows]))
        logits = forward(p, batch[:, :-1], spec["n_layer"], spec["n_head"])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), o["grad_clip"])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, o, steps)
        opt.step()
        losses.append(loss.item())
    save_file({k: v.detach().contiguous() for k, v in p.items()}, spec["out"])
    print(json.dumps({"losses": losses}))


if __name__ == "__main__":
    main()
