#!/usr/bin/env python3
"""Tensor, context and data parallelism side by side: tokens/s and memory per
rank of one model trained as tp = 2, cp = 2 and dp = 2 (2 ranks each), tp = 2 x
cp = 2 (4 ranks) and on one rank, runs interleaved so machine noise hits every
layout alike.

    cargo build --release && python3 bench/parallel_layouts.py [--seq-len 2048] [--steps 4] [--rounds 2]

The model is GPT-2 L4 d512 h8 (vocabulary 256) on the synthetic copy task, 4
sequences per step. tokens/s is the median over steps after the first
(warm-up) of every round, for the whole job; memory per rank is the plan's
estimate (`cptrain check`): the f32 state (parameters, gradients, AdamW
moments) and the activations of one micro-batch; peak RSS is the whole process
(all thread-ranks). Every layout gets the machine's cores (`kernels.threads =
0`, shared out among the process's ranks, at least one each), so on a machine
with fewer cores than ranks the 4-rank layout is oversubscribed.
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from runs import check_item_mib, cptrain, records, require_binary, set_args

LAYOUTS = [(1, 1, 1), (2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 1)]


def layout_args(layout, seq_len, steps, out_dir):
    tp, cp, dp = layout
    return set_args({
        "model.n_layer": 4,
        "model.n_embd": 512,
        "model.n_head": 8,
        "model.vocab_size": 256,
        "model.seq_len": seq_len,
        "train.batch_size": 4,
        "parallel.world_size": tp * cp * dp,
        "parallel.tp": tp,
        "parallel.cp": cp,
        "parallel.cp_comm": "p2p",
        "kernels.threads": 0,
        "train.steps": steps,
        "train.eval_batches": 0,
        "train.checkpoint_every": 0,
        "train.out_dir": out_dir,
        "metrics.progress": "never",
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=4, help="per run, the first one warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    for flag, value, least in (("--seq-len", opts.seq_len, 8), ("--steps", opts.steps, 2),
                               ("--rounds", opts.rounds, 1)):
        if value < least:
            parser.error(f"{flag}: expected at least {least}, got {value}")
    require_binary()
    results = {layout: {"tps": [], "rss": 0.0} for layout in LAYOUTS}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(opts.rounds):
            for layout in LAYOUTS:
                out_dir = Path(tmp) / f"r{round_}-{'-'.join(map(str, layout))}"
                cptrain("run", layout_args(layout, opts.seq_len, opts.steps, out_dir))
                steps = records(out_dir)
                results[layout]["tps"] += [r["tokens_per_s"] for r in steps[1:]]
                rss = max(r.get("peak_rss_bytes", 0) for r in steps) / 2**20
                results[layout]["rss"] = max(results[layout]["rss"], rss)
        base = statistics.median(results[(1, 1, 1)]["tps"])
        print(f"GPT-2 L4 d512 h8 V256, T = {opts.seq_len}, 4 sequences/step, "
              f"{opts.rounds} rounds x {opts.steps} steps")
        print(f"| tp | cp | dp | ranks | tokens/s | vs 1 rank | state MiB/rank | activations MiB/rank | peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for layout, r in results.items():
            tps = statistics.median(r["tps"])
            check = cptrain("check", layout_args(layout, opts.seq_len, opts.steps, Path(tmp) / "check"))
            state = check_item_mib(check, "parameters, gradients and AdamW moments")
            acts = check_item_mib(check, "activations of one micro-batch")
            tp, cp, dp = layout
            print(f"| {tp} | {cp} | {dp} | {tp * cp * dp} | {tps:.0f} | {tps / base:.2f} | "
                  f"{state:.1f} | {acts:.1f} | {r['rss']:.0f} |")


if __name__ == "__main__":
    main()
