#!/usr/bin/env python3
"""Side-by-side training-step benchmark: cptrain vs PyTorch CPU references.

Runs `trainer/examples/step_bench.rs` (A; and A' with bf16 products on a CPU
with AVX512-BF16) and `bench/torch_gpt2.py` in the
variants chosen by --torch (B, C, ...: eager f32, torch.compile f32, bf16
autocast eager and compiled) on the same model, batch, sequence length and
thread count, interleaved A B C ... A B C ... (one process per run, so each
has its own peak RSS), then prints a markdown table: step time
median/min/max over every timed step of every round, tokens/s and model
GFLOP/s at the median, MFU against the machine's large matmul rate of the
row's precision measured through this same run (2048^3, per thread count:
the faster of PyTorch's (MKL / oneDNN) and cptrain's own GEMM; measured
at the start and again before every round, MFU uses the median, since one
measurement moves with the shared host by up to 20 %), peak RSS, and each
row's tokens/s over the fastest PyTorch variant of its precision and over the
fastest PyTorch variant of any precision. The CPU's model and its matmul
features (AVX2, AVX-512, AVX512-BF16, AMX) are printed first.

  python3 bench/compare.py                       # tiny and small, 1 and 2 threads
  python3 bench/compare.py --configs 124m --threads 2 --rounds 2 --steps 2 --warmup 1
  python3 bench/compare.py --torch eager         # eager f32 PyTorch only (no compile wait)

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
TORCH_VARIANTS = {
    # name: (row label, precision, torch_gpt2.py flags)
    "eager": ("torch eager", "f32", []),
    "compile": ("torch.compile", "f32", ["--compile"]),
    "bf16": ("torch eager bf16", "bf16", ["--bf16"]),
    "compile-bf16": ("torch.compile bf16", "bf16", ["--compile", "--bf16"]),
}
# /proc/cpuinfo flags that decide which matmul kernels a library can use.
CPU_FEATURES = [("AVX2", "avx2"), ("AVX-512", "avx512f"), ("AVX512-BF16", "avx512_bf16"),
                ("AMX-BF16", "amx_bf16")]
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


def cpu_fields():
    """The fields of /proc/cpuinfo (its first CPU's), or None without it."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in fields.items()}


def cpu_flags():
    """The CPU's feature flags, as /proc/cpuinfo names them."""
    return set((cpu_fields() or {}).get("flags", "").split())


def cpu_description():
    """The CPU's model name and which of CPU_FEATURES it has, from /proc/cpuinfo."""
    fields = cpu_fields()
    if fields is None:
        return "CPU: unknown (no /proc/cpuinfo)"
    flags = cpu_flags()
    has = ", ".join(f"{name} {'yes' if flag in flags else 'no'}" for name, flag in CPU_FEATURES)
    return f"CPU: {fields.get('model name', 'unknown')}, {os.cpu_count()} logical CPUs; {has}"


def run_json(cmd):
    """Runs cmd, returns its JSON lines; stderr passes through on failure."""
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")], proc.stderr


class Side:
    """One implementation under test, at one precision ("f32" or "bf16")."""

    def __init__(self, name, command, precision="f32", is_torch=False):
        self.name, self.command = name, command
        self.precision, self.is_torch = precision, is_torch

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
    ap.add_argument("--torch", default=",".join(TORCH_VARIANTS),
                    help=f"comma list of PyTorch variants, from {', '.join(TORCH_VARIANTS)}")
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
    variants = args.torch.split(",")
    unknown = [v for v in variants if v not in TORCH_VARIANTS]
    if unknown or not variants:
        ap.error(f"--torch: unknown {', '.join(map(repr, unknown))}; expected a comma list of "
                 f"{', '.join(TORCH_VARIANTS)}")
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
    torch_script = [args.python, os.path.join(ROOT, "bench", "torch_gpt2.py")]
    sides = [cptrain]
    # cptrain refuses bf16 products on a CPU without AVX512-BF16.
    bf16_cpu = "avx512_bf16" in cpu_flags()
    if bf16_cpu:
        sides.append(Side("cptrain bf16", cptrain.command + ["--bf16"], "bf16"))
    if args.baseline:
        sides.append(Side("cptrain baseline", [os.path.abspath(args.baseline)]))
    for v in variants:
        label, precision, flags = TORCH_VARIANTS[v]
        sides.append(Side(label, torch_script + flags, precision, is_torch=True))
    print(cpu_description(), flush=True)

    # Large-matmul rates per thread count and precision, one per measurement.
    peaks = {t: {"f32": [], "bf16": []} for t in threads_list}

    def measure_peak(t):
        """One large-matmul measurement per library and precision; each
        precision keeps the faster of cptrain's and PyTorch's."""
        ours = {}
        for precision in ("f32", "bf16") if bf16_cpu else ("f32",):
            flags = ["--matmul-peak"] + (["--bf16"] if precision == "bf16" else [])
            rows, _ = cptrain.run(CONFIGS["tiny"], t, 0, 0, flags)
            ours[precision] = next(r["gflops"] for r in rows if r["kind"] == "matmul")
        rows, _ = run_json(torch_script + shape_args(CONFIGS["tiny"]) + [
            "--threads", str(t), "--steps", "0", "--warmup", "0", "--matmul-peak"])
        theirs = next(r for r in rows if r["kind"] == "matmul")
        peaks[t]["f32"].append(max(ours["f32"], theirs["gflops"]))
        peaks[t]["bf16"].append(max(ours.get("bf16", 0.0), theirs["bf16_gflops"]))
        return ours, theirs

    for t in threads_list:
        ours, theirs = measure_peak(t)
        mine = f"bf16 cptrain gemm {ours['bf16']:.1f}, " if "bf16" in ours else ""
        print(f"threads={t}: 2048^3 matmul GFLOP/s at the start: f32 cptrain gemm "
              f"{ours['f32']:.1f}, torch (MKL) {theirs['gflops']:.1f}; {mine}bf16 torch "
              f"{theirs['bf16_gflops']:.1f}", flush=True)

    header = ("| config | threads | impl | precision | step ms median (min-max) | tokens/s "
              "| GFLOP/s | MFU | peak RSS MiB | tokens/s vs fastest torch, same precision "
              "| vs fastest torch |")

    def table_rows(name, t, rows, tokens, flops):
        """One markdown row per side, MFU against the measurements so far of
        the row's precision; ratios against the fastest PyTorch rows."""
        stats = {s.name: summarize(rows[s.name], tokens, flops,
                                   statistics.median(peaks[t][s.precision])) for s in sides}
        torch_rate = {s.name: stats[s.name]["tok_s"] for s in sides if s.is_torch}
        fastest = {p: max((torch_rate[s.name] for s in sides if s.is_torch and s.precision == p),
                          default=None) for p in ("f32", "bf16")}
        overall = max(torch_rate.values())
        out = []
        for side in sides:
            s = stats[side.name]
            same = fastest[side.precision]
            same = "-" if same is None else f"{s['tok_s'] / same:.2f}"
            out.append(
                f"| {name} | {t} | {side.name} | {side.precision} | {1e3 * s['median']:.1f} "
                f"({1e3 * s['min']:.1f}-{1e3 * s['max']:.1f}) | {s['tok_s']:.0f} "
                f"| {s['gflops']:.1f} | {100 * s['mfu']:.0f}% | {s['rss_mib']:.0f} | {same} "
                f"| {s['tok_s'] / overall:.2f} |")
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

    print("\n" + header + "\n|" + "---|" * 11)
    for result in results:
        print(*table_rows(*result), sep="\n")
    for t in threads_list:
        for precision, p in peaks[t].items():
            print(f"threads={t}: {precision} MFU against the median of {len(p)} large-matmul "
                  f"measurements through the run: {statistics.median(p):.1f} GFLOP/s "
                  f"(range {min(p):.1f}-{max(p):.1f}); rows printed during the run used those "
                  f"taken up to then")


if __name__ == "__main__":
    main()
