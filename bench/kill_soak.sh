#!/usr/bin/env bash
# Soak test of checkpoint atomicity: kills a run that checkpoints every step
# with SIGKILL at random moments, KILLS times, resuming after each, then checks
# that the final weights and losses equal those of an uninterrupted run, bit
# for bit. (tests/runs.rs does the same with 10 kills in CI.)
#
#   bash bench/kill_soak.sh [KILLS] [STEPS]        # defaults: 100 kills, 400 steps
#
# Uses target/release/cptrain (build it first: cargo build --release).
set -euo pipefail
kills=${1:-100}
steps=${2:-400}
bin=${CARGO_TARGET_DIR:-$(dirname "$0")/../target}/release/cptrain
[ -x "$bin" ] || { echo "no $bin: run cargo build --release first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--set model.n_embd=128 --set model.n_layer=2 --set model.seq_len=32
        --set train.steps="$steps" --set train.checkpoint_every=1 --set train.keep_last=2
        --set train.eval_every=5 --set metrics.progress=never --set metrics.peak_gflops=100)

"$bin" run "${common[@]}" --set train.out_dir="$work/whole" >/dev/null 2>&1
landed=0
while [ "$landed" -lt "$kills" ] && [ ! -f "$work/killed/checkpoints/step-$steps/DONE" ]; do
    mode=(run --set train.overwrite=true)
    if ls "$work"/killed/checkpoints/step-*/DONE >/dev/null 2>&1; then
        mode=(run --resume)
    fi
    "$bin" "${mode[@]}" "${common[@]}" --set train.out_dir="$work/killed" >/dev/null 2>"$work/err" &
    pid=$!
    sleep "0.$(( RANDOM % 6 + 1 ))$(( RANDOM % 10 ))"
    if kill -9 "$pid" 2>/dev/null; then
        landed=$((landed + 1))
    fi
    status=0
    wait "$pid" 2>/dev/null || status=$?
    # 137: our SIGKILL; 0: it finished first. Anything else is a failure to resume.
    case "$status" in
        0|137) ;;
        *) echo "run failed (exit $status):" >&2; cat "$work/err" >&2; exit 1 ;;
    esac
done
if [ ! -f "$work/killed/checkpoints/step-$steps/DONE" ]; then
    "$bin" run --resume "${common[@]}" --set train.out_dir="$work/killed" >/dev/null 2>&1
fi
cmp "$work/whole/checkpoints/step-$steps/model.safetensors" \
    "$work/killed/checkpoints/step-$steps/model.safetensors"
python3 - "$work" <<'PY'
import json, sys
load = lambda d: [(r["step"], r["loss"]) for r in map(json.loads, open(f"{sys.argv[1]}/{d}/metrics.jsonl"))]
assert load("whole") == load("killed"), "loss curves differ"
PY
echo "$landed kills: the resumed run ends bit-exactly where the uninterrupted one does"
