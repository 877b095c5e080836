#!/usr/bin/env python3
"""Side-by-side training-step benchmark: cptrain vs a PyTorch CPU reference.

Runs `trainer/examples/step_bench.rs` (A) and `bench/torch_gpt2.py` (B) on the
same model, batch, sequence length and thread count, interleaved A B A B ...
(one process per run, so each has its own peak RSS), then prints a markdown
table: step time median/min/max over every timed step of every round,
tokens/s and model GFLOP/s at the median, MFU against the machine's large
f32 matmul rate measured through this same run (the faster of PyTorch/MKL and
cptrain's own GEMM at 2048^3, per thread count: measured at the start and
again before every round, MFU uses the median, since one measurement moves
with the shared host by up to 20 %), peak RSS, and cptrain's tokens/s over
PyTorch's.

  python3 bench/compare.py                       # tiny and small, 1 and 2 threads
  python3 bench/compare.py --configs 124m --threads 2 --rounds 2 --steps 2 --warmup 1
  python3 bench/compare.py --compile             # adds a torch.compile row

Needs PyTorch (`pip install torch`) for the interpreter given by --python
(default: this one) and cargo to build the example.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    # name: (layers, embd, heads, seq, batch, vocab)
    "tiny": (2, 128, 4, 256, 8, 256),
    "small": (4, 256, 4, 512, 4, 256),
    "124m": (12, 768, 12, 1024, 4, 50257),
}


def shape_args(cfg):
    layers, embd, heads, seq, batch, vocab = cfg
    return ["--layers", str(layers), "--embd", str(embd), "--heads", str(heads),
            "--seq", str(seq), "--batch", str(batch), "--vocab", str(vocab)]


def run_json(cmd):
    """Runs cmd, returns its JSON lines; stderr passes through on failure."""
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")], proc.stderr


class Side:
    """One implementation under test."""

    def __init__(self, name, command):
        self.name, self.command = name, command

    def run(self, cfg, threads, steps, warmup, extra=()):
        cmd = self.command + shape_args(cfg) + ["--threads", str(threads), "--steps", str(steps),
                                                "--warmup", str(warmup), *extra]
        return run_json(cmd)


def summarize(rows, tokens, flops, peak):
    steps = [r["seconds"] for r in rows if r["kind"] == "step"]
    rss = max((r.get("peak_rss_bytes") or 0) for r in rows if r["kind"] == "summary")
    med = statistics.median(steps)
    return {
        "median": med, "min": min(steps), "max": max(steps), "n": len(steps),
        "tok_s": tokens / med, "gflops": flops / med / 1e9,
        "mfu": flops / med / 1e9 / peak, "rss_mib": rss / 2**20,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="tiny,small", help=f"comma list of {sorted(CONFIGS)}")
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts")
    ap.add_argument("--rounds", type=int, default=3, help="A B pairs per (config, threads)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per process")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch")
    ap.add_argument("--compile", action="store_true", help="also run torch.compile")
    ap.add_argument("--profile", action="store_true", help="print cptrain's per-phase profile")
    ap.add_argument("--no-build", action="store_true", help="use the built example as is")
    ap.add_argument("--baseline", metavar="STEP_BENCH",
                    help="another step_bench binary (e.g. built from an older commit) to run as a "
                         "third side, for before/after figures from the same run")
    args = ap.parse_args()
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"--configs: unknown {', '.join(map(repr, unknown))}; expected a comma list of "
                 f"{', '.join(sorted(CONFIGS))}")
    try:
        threads_list = [int(t) for t in args.threads.split(",")]
    except ValueError:
        threads_list = []
    if not threads_list or min(threads_list) < 1:
        ap.error(f"--threads: expected a comma list of whole numbers >= 1, got {args.threads!r}")
    for flag, value, least in (("--rounds", args.rounds, 1), ("--steps", args.steps, 1),
                               ("--warmup", args.warmup, 0)):
        if value < least:
            ap.error(f"{flag}: expected at least {least}, got {value}")
    try:
        has_torch = subprocess.run([args.python, "-c", "import torch"],
                                   capture_output=True).returncode == 0
    except OSError as err:
        ap.error(f"--python: cannot run {args.python!r}: {err.strerror}")
    if not has_torch:
        raise SystemExit(f"{args.python} cannot import torch: install it with `{args.python} -m pip "
                         "install torch` (CPU wheels: --index-url "
                         "https://download.pytorch.org/whl/cpu), or pass --python with an "
                         "interpreter that has it")

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "cptrain", "--example",
                        "step_bench"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    cptrain = Side("cptrain", [os.path.join(target, "release", "examples", "step_bench")])
    torch = Side("torch eager", [args.python, os.path.join(ROOT, "bench", "torch_gpt2.py")])
    sides = [cptrain, torch]
    if args.compile:
        sides.append(Side("torch.compile", torch.command + ["--compile"]))
    if args.baseline:
        sides.insert(1, Side("cptrain baseline", [os.path.abspath(args.baseline)]))

    peaks = {t: [] for t in threads_list}

    def measure_peak(t):
        """One large-matmul measurement per library; keeps the faster."""
        mm = {}
        for side in (cptrain, torch):
            rows, _ = side.run(CONFIGS["tiny"], t, 0, 0, ["--matmul-peak"])
            mm[side.name] = next(r["gflops"] for r in rows if r["kind"] == "matmul")
        peaks[t].append(max(mm.values()))
        return mm

    for t in threads_list:
        mm = measure_peak(t)
        print(f"threads={t}: 2048^3 f32 matmul GFLOP/s at the start: cptrain gemm "
              f"{mm['cptrain']:.1f}, torch (MKL) {mm['torch eager']:.1f}", flush=True)

    header = ("| config | threads | impl | step ms median (min-max) | tokens/s | GFLOP/s | MFU "
              "| peak RSS MiB | tokens/s ratio vs torch eager |")

    def table_rows(name, t, rows, tokens, flops):
        """One markdown row per side, MFU against the measurements so far."""
        peak = statistics.median(peaks[t])
        stats = {s: summarize(v, tokens, flops, peak) for s, v in rows.items()}
        base = stats["torch eager"]["tok_s"]
        out = []
        for side in sides:
            s = stats[side.name]
            ratio = "1.00" if side is torch else f"{s['tok_s'] / base:.2f}"
            out.append(
                f"| {name} | {t} | {side.name} | {1e3 * s['median']:.1f} "
                f"({1e3 * s['min']:.1f}-{1e3 * s['max']:.1f}) | {s['tok_s']:.0f} "
                f"| {s['gflops']:.1f} | {100 * s['mfu']:.0f}% | {s['rss_mib']:.0f} | {ratio} |")
        return out

    results = []
    for name in configs:
        cfg = CONFIGS[name]
        for t in threads_list:
            rows = {s.name: [] for s in sides}
            tokens = flops = None
            for r in range(args.rounds):
                measure_peak(t)
                for side in sides:
                    extra = ["--profile"] if (side is cptrain and args.profile and r == 0) else []
                    out, err = side.run(cfg, t, args.steps, args.warmup, extra)
                    rows[side.name] += out
                    if extra:
                        sys.stderr.write(f"[{name} threads={t}] {err}")
                    summary = next(x for x in out if x["kind"] == "summary")
                    if side is cptrain:
                        tokens, flops = summary["tokens_per_step"], summary["flops_per_step"]
            results.append((name, t, rows, tokens, flops))
            print(*table_rows(*results[-1]), sep="\n", flush=True)

    print("\n" + header + "\n|" + "---|" * 9)
    for result in results:
        print(*table_rows(*result), sep="\n")
    for t in threads_list:
        p = peaks[t]
        print(f"threads={t}: MFU against the median of {len(p)} large-matmul measurements "
              f"through the run (each the faster library's): {statistics.median(p):.1f} "
              f"GFLOP/s (range {min(p):.1f}-{max(p):.1f}); rows printed during the run used "
              f"those taken up to then")


if __name__ == "__main__":
    main()
