//! "Parallelism is invisible to the math": for the same config, seed and
//! global batch, every (cp, dp, cp_comm) trains the single-rank loss curve,
//! and ends with the same weights.

mod common;

use common::{assert_same_training, checkpoint_weights, cptrain_ok, losses};
use std::path::Path;

const STEPS: u64 = 10;

/// One run; `micro` splits each rank's share of the batch into micro-batches
/// of that many sequences (gradient accumulation).
fn train(
    dir: &Path,
    name: &str,
    (cp, dp, cp_comm): (usize, usize, &str),
    micro: Option<usize>,
) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut sets = vec![
        "model.n_layer=2".to_string(),
        "model.n_head=4".into(),
        "model.n_embd=32".into(),
        "model.seq_len=32".into(),
        "train.batch_size=8".into(),
        format!("train.steps={STEPS}"),
        "train.eval_every=0".into(),
        "optimizer.warmup_steps=2".into(),
        format!("train.out_dir={}", out.display()),
        format!("parallel.world_size={}", cp * dp),
        format!("parallel.cp={cp}"),
        format!("parallel.cp_comm={cp_comm}"),
        // Same kernel threads per rank everywhere, so only the split differs.
        format!("kernels.threads={}", cp * dp),
        "metrics.progress=never".into(),
    ];
    if let Some(micro) = micro {
        sets.push(format!("train.micro_batch_size={micro}"));
    }
    let mut args = vec!["run"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    cptrain_ok(dir, &args);
    out
}

#[test]
fn every_layout_trains_the_single_rank_curve() {
    let dir = tempfile::tempdir().unwrap();
    let reference = train(dir.path(), "ref", (1, 1, "p2p"), None);
    let ref_losses = losses(&reference);
    assert_eq!(ref_losses.len(), STEPS as usize);
    assert!(
        ref_losses[STEPS as usize - 1] < ref_losses[0],
        "the reference learns"
    );
    let ref_weights = checkpoint_weights(&reference, STEPS);

    // (layout, micro-batch size): accumulating over micro-batches, alone and
    // under DP×CP, must not change the math either.
    let mut runs = vec![
        ((1, 2, "p2p"), None),
        ((1, 1, "p2p"), Some(2)),
        ((2, 2, "p2p"), Some(1)),
    ];
    for cp in [2, 4] {
        for dp in [1, 2] {
            for comm in ["p2p", "all_gather", "a2a"] {
                runs.push(((cp, dp, comm), None));
            }
        }
    }
    for ((cp, dp, comm), micro) in runs {
        let name = match micro {
            Some(m) => format!("cp{cp}-dp{dp}-{comm}-micro{m}"),
            None => format!("cp{cp}-dp{dp}-{comm}"),
        };
        let out = train(dir.path(), &name, (cp, dp, comm), micro);
        assert_same_training(&name, &out, &ref_losses, &ref_weights, STEPS);
    }
}
