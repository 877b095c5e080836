#!/usr/bin/env python3
"""PyTorch reference for cptrain's training-step benchmark (CPU, or a GPU).

A plain GPT-2 written for this comparison (the model of ARCHITECTURE.md:
pre-LN blocks, learned positions, GELU tanh, biases, ln_f, output head tied to
wte, no dropout), trained with torch.optim.AdamW (decay on 2-D weights only,
like cptrain's ParamLayout). Each step is zero_grad + forward + backward +
AdamW, timed with a wall clock; one JSON object per line goes to stdout:

  {"kind": "step", "step": i, "seconds": s, "loss": l}
  {"kind": "matmul", "gflops": g, "bf16_gflops": h, ...}   (with --matmul-peak)
  {"kind": "summary", "peak_rss_bytes": ..., "threads": n, ...}

Usage: torch_gpt2.py --layers 2 --embd 128 --heads 4 --seq 256 --batch 8
       --vocab 256 --threads 2 --steps 10 --warmup 2 [--compile] [--bf16]

--bf16 runs forward and loss under autocast to bfloat16 (matmuls in
bf16 with f32 accumulation, f32 weights and optimizer state); the backward
follows the dtypes autocast chose, as in a user's mixed-precision loop.

--device cuda runs on GPU 0 (bench/gpu_check.sh): AdamW is the fused CUDA
implementation, each step ends with torch.cuda.synchronize() before its
time is taken, and the summary adds the GPU's peak allocated bytes.
"""

import argparse
import contextlib
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        shape = (b, t, self.heads, d // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, d))
        h = F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")
        return x + self.mlp_proj(h)


class GPT(nn.Module):
    def __init__(self, layers, d, heads, seq, vocab):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        # GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2L).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight"):
                    std /= math.sqrt(2 * layers)
                nn.init.normal_(p, 0.0, std)
            elif "ln" in name and name.endswith("weight"):
                nn.init.ones_(p)
            else:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def matmul_gflops(dtype=torch.float32, n=2048, k=2048, m=2048, reps=5):
    """Best-of rate of a large matmul through torch (MKL, oneDNN for bf16), in GFLOP/s."""
    a, b = torch.randn(n, k, dtype=dtype), torch.randn(k, m, dtype=dtype)
    c = a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n * k * m / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--embd", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (mixed precision)")
    ap.add_argument("--matmul-peak", action="store_true",
                    help="also time a 2048^3 matmul, f32 and bf16 (CPU)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    on_gpu = args.device == "cuda"

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = GPT(args.layers, args.embd, args.heads, args.seq, args.vocab).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=6e-4,
        betas=(0.9, 0.95),
        eps=1e-8,
        **({"fused": True} if on_gpu else {}),
    )
    step_fn = torch.compile(model) if args.compile else model

    n = args.batch * args.seq
    tokens = (torch.arange(n) * 31 % args.vocab).view(args.batch, args.seq).to(device)
    targets = (tokens + 1) % args.vocab
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    if args.matmul_peak:
        print(json.dumps({"kind": "matmul", "shape": [2048, 2048, 2048],
                          "gflops": matmul_gflops(),
                          "bf16_gflops": matmul_gflops(torch.bfloat16)}), flush=True)
    autocast = (lambda: torch.autocast(args.device, dtype=torch.bfloat16)) if args.bf16 \
        else contextlib.nullcontext
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            loss = step_fn(tokens, targets)
        loss.backward()
        opt.step()
        sync()
        seconds = time.perf_counter() - t0
        if i >= args.warmup:
            print(json.dumps({"kind": "step", "step": i - args.warmup,
                              "seconds": seconds, "loss": loss.item()}), flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    summary = {"kind": "summary", "peak_rss_bytes": rss, "threads": args.threads,
               "torch": torch.__version__, "compile": args.compile, "bf16": args.bf16,
               "device": args.device, "params": sum(p.numel() for p in model.parameters())}
    if on_gpu:
        summary["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
