"""Running the release binary from the benchmark scripts: `cptrain` calls that
stop on failure, and a run's per-step records."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "cptrain"

UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


def require_binary():
    if not BINARY.is_file():
        raise SystemExit(f"{BINARY} not found: build it first with `cargo build --release`")


def set_args(pairs):
    """`--set key=value` for each pair of a dict."""
    args = []
    for key, value in pairs.items():
        args += ["--set", f"{key}={value}"]
    return args


def cptrain(command, args):
    """Runs `cptrain command args`; on failure shows its stderr and stops."""
    proc = subprocess.run([BINARY, command, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"failed ({proc.returncode}): cptrain {command} {' '.join(map(str, args))}")
    return proc.stdout


def records(out_dir):
    """The metrics.jsonl records of the run in `out_dir`."""
    return [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]


def mib(text):
    """`12.5 MiB` (as `cptrain check` prints sizes) in MiB."""
    value, unit = text.split()
    return float(value) * UNITS[unit] / 2**20


def check_item_mib(check_output, what):
    """The size of the memory item `what` (a prefix of its name) that `cptrain check` prints per rank."""
    match = re.search(r"^\s+([\d.]+ \w+) " + re.escape(what), check_output, re.MULTILINE)
    return mib(match.group(1))
