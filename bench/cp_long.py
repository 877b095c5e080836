#!/usr/bin/env python3
"""Long-sequence context-parallel benchmark: tokens/s and memory per rank for
cp = 1, 2, 4 and each cp_comm strategy, on the `long` profile (T = 4096 by
default), runs interleaved so machine noise hits every variant alike.

    cargo build --release && python3 bench/cp_long.py [--seq-len 8192] [--steps 6] [--rounds 2]

tokens/s is the median over steps after the first (warm-up) of every round;
activation MiB/rank is the plan's estimate (`cptrain check`); peak RSS is the
whole process (all thread-ranks).
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from runs import check_item_mib, cptrain, records, require_binary, set_args


def variants():
    yield 1, "p2p"
    for cp in (2, 4):
        for comm in ("p2p", "all_gather", "a2a"):
            yield cp, comm


def sets(cp, comm, seq_len, steps, out_dir):
    return ["--profile", "long"] + set_args({
        "model.seq_len": seq_len,
        "parallel.world_size": cp,
        "parallel.cp": cp,
        "parallel.cp_comm": comm,
        "train.steps": steps,
        "train.eval_batches": 0,
        "train.out_dir": out_dir,
        "metrics.progress": "never",
    })


def activation_mib(args):
    return check_item_mib(cptrain("check", args), "activations of one micro-batch")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=6, help="per run, the first one warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    # Each run's first step is warm-up, so a run needs two.
    for flag, value, least in (("--seq-len", opts.seq_len, 1), ("--steps", opts.steps, 2),
                               ("--rounds", opts.rounds, 1)):
        if value < least:
            parser.error(f"{flag}: expected at least {least}, got {value}")
    require_binary()
    results = {v: {"tps": [], "rss": 0.0} for v in variants()}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(opts.rounds):
            for cp, comm in variants():
                out_dir = Path(tmp) / f"r{round_}-cp{cp}-{comm}"
                args = sets(cp, comm, opts.seq_len, opts.steps, out_dir)
                cptrain("run", args)
                steps = records(out_dir)
                results[(cp, comm)]["tps"] += [r["tokens_per_s"] for r in steps[1:]]
                rss = max(r.get("peak_rss_bytes", 0) for r in steps) / 2**20
                results[(cp, comm)]["rss"] = max(results[(cp, comm)]["rss"], rss)
        base = statistics.median(results[(1, "p2p")]["tps"])
        print(f"T = {opts.seq_len}, tiny model (profile `long`), {opts.rounds} rounds x {opts.steps} steps")
        print(f"{'cp':>3} {'cp_comm':<11} {'tokens/s':>9} {'vs cp=1':>8} {'act MiB/rank':>13} {'peak RSS MiB':>13}")
        for (cp, comm), r in results.items():
            tps = statistics.median(r["tps"])
            act = activation_mib(sets(cp, comm, opts.seq_len, opts.steps, Path(tmp) / "check"))
            print(f"{cp:>3} {comm:<11} {tps:>9.0f} {tps / base:>8.2f} {act:>13.1f} {r['rss']:>13.0f}")


if __name__ == "__main__":
    main()
