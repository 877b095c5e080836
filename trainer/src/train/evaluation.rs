//! Evaluation on a rank layout: the loss of fixed batches of a split, each
//! rank forwarding its own share of every batch (its DP sequences, its CP
//! chunks), the sums all-reduced over DP×CP. Training's periodic
//! evaluation and `cptrain eval` run the same code, so `cptrain eval` on
//! any layout gives the run's `eval_loss` up to f32 summation order.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{ModelShard, RankGroups, TrainError, TrainPlan};
use crate::attention::Attention;
use crate::data::{BatchBuilder, DataSource, IGNORE_TARGET, MicroBatch, Split};
use crate::device::Buffer;
use crate::inference::EvalTotals;
use crate::kernels::{CpuKernels, Kernels, Precision, Threads};
use crate::model::{Activations, Batch, Gpt};
use crate::parallel::{Backend, LocalBackend, ReduceOp};

/// What to evaluate: batch `e` (of `train.batch_size` sequences) of `split`
/// is built as training step `e` would be.
#[derive(Clone, Copy, Debug)]
pub struct EvalBatches<'a> {
    /// The split.
    pub split: Split,
    /// Batches `0..batches`.
    pub batches: u64,
    /// Bytes each token id decodes to, for bits per byte (`None`: the ids
    /// are not text).
    pub byte_lengths: Option<&'a [u64]>,
}

/// A rank's part of the model: what it forwards with and where it sums.
pub(super) struct RankModel<'a> {
    pub gpt: &'a Gpt,
    pub kernels: &'a dyn Kernels,
    pub attention: &'a dyn Attention,
    pub groups: &'a RankGroups,
}

impl RankModel<'_> {
    /// The global sums over `what`: `[Σ loss, counted targets, bytes]`, or
    /// `None` when some rank asked to stop (checked before every batch and
    /// agreed on over DP×CP, so every rank leaves at the same batch).
    pub fn eval_sums(
        &self,
        params: &Buffer,
        acts: &mut Activations,
        builder: &mut BatchBuilder,
        micro: &mut [MicroBatch],
        what: &EvalBatches<'_>,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Option<[f64; 3]>, TrainError> {
        let mut sums = [0.0; 3];
        for e in 0..what.batches {
            let mut stopping = [f64::from(u8::from(stop()))];
            self.groups
                .dp_cp
                .all_reduce_f64(&mut stopping, ReduceOp::Sum)?;
            if stopping[0] > 0.0 {
                return Ok(None);
            }
            for (m, batch) in micro.iter_mut().enumerate() {
                builder.fill(what.split, e, m, batch)?;
                let input = Batch {
                    tokens: &batch.tokens,
                    targets: &batch.targets,
                    positions: &batch.positions,
                };
                let loss =
                    self.gpt
                        .forward(self.kernels, self.attention, params.view(), input, acts)?;
                sums[0] += loss.sum;
                sums[1] += loss.count as f64;
                if let Some(lengths) = what.byte_lengths {
                    sums[2] += batch
                        .targets
                        .iter()
                        .filter(|&&id| id != IGNORE_TARGET)
                        .map(|&id| lengths.get(id as usize).copied().unwrap_or(0) as f64)
                        .sum::<f64>();
                }
            }
        }
        self.groups.dp_cp.all_reduce_f64(&mut sums, ReduceOp::Sum)?;
        Ok(Some(sums))
    }
}

/// Builds rank `rank`'s attention strategy over its process groups,
/// computing with its kernels (`cptrain eval`: the linked component
/// `parallel.cp_comm` selects, as in a run).
pub type RankAttention<'a> = dyn Fn(usize, Arc<RankGroups>, Arc<dyn Kernels>) -> Result<Arc<dyn Attention>, TrainError>
    + Sync
    + 'a;

/// Evaluates `params` on `plan`'s rank layout: every rank of
/// `parallel.world_size` runs as a thread of this process (the `local`
/// backend, whatever trained the model) with its process groups, CPU
/// kernels at `kernels.precision` and the attention `attention` builds,
/// and forwards its share of each batch of `what`. Trains nothing and
/// writes nothing.
pub fn evaluate_on_layout(
    plan: &TrainPlan,
    data: Arc<dyn DataSource>,
    params: &[f32],
    what: &EvalBatches<'_>,
    attention: &RankAttention<'_>,
) -> Result<EvalTotals, TrainError> {
    let timeout = Duration::from_secs_f64(plan.parallel.timeout_s);
    let backend = LocalBackend::new(plan.grid.world_size(), timeout);
    let result = Mutex::new(None);
    let body = |rank: usize| -> Result<(), TrainError> {
        let threads = Threads::new(plan.threads_per_rank)?;
        // The products at the run's precision, as its own evaluation ran
        // (the plan checked that this CPU runs it).
        let cpu = CpuKernels::with_precision(threads, plan.precision)
            .map_err(|e| TrainError::Invalid(format!("kernels.precision: {e}")))?;
        let kernels: Arc<dyn Kernels> = Arc::new(cpu);
        let groups = Arc::new(RankGroups::new(&backend, &plan.grid, rank)?);
        let attention = attention(rank, groups.clone(), kernels.clone())?;
        let shard = ModelShard::new(plan, &groups)?;
        let mut builder = BatchBuilder::new(plan.batch_plan(rank)?, data.clone())?;
        let mut micro: Vec<MicroBatch> = (0..builder.plan().micro_batches_per_step())
            .map(|_| builder.new_micro_batch())
            .collect();
        // Forward only: no backward reads a kept operand, so none is
        // rounded into a bf16 copy.
        let mut acts = Activations::with_operands(
            &*kernels,
            shard.gpt().shape(),
            plan.micro_batch_size(),
            plan.local_seq_len(),
            attention.qkv_layout(),
            Precision::F32,
        )?;
        let params = kernels.upload(&shard.split(params)?)?;
        let model = RankModel {
            gpt: shard.gpt(),
            kernels: &*kernels,
            attention: &*attention,
            groups: &groups,
        };
        let sums = model.eval_sums(&params, &mut acts, &mut builder, &mut micro, what, &|| {
            false
        })?;
        if rank == 0 {
            *result.lock().unwrap_or_else(PoisonError::into_inner) = sums;
        }
        Ok(())
    };
    backend
        .launch(&|rank| body(rank).map_err(Into::into))
        .map_err(|e| match e.downcast::<TrainError>() {
            Ok(error) => *error,
            Err(other) => TrainError::Invalid(other.to_string()),
        })?;
    let sums = result
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .expect("rank 0 evaluated: nothing asks it to stop");
    Ok(EvalTotals {
        loss_sum: sums[0],
        targets: sums[1] as u64,
        bytes: what.byte_lengths.map(|_| sums[2] as u64),
        sequences: what.batches as usize * plan.train.batch_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{BuiltinStrategy, LocalAttention};
    use crate::data::{DataConfig, TrainConfig, open_data_source};
    use crate::inference::byte_lengths;
    use crate::kernels::KernelsConfig;
    use crate::metrics::MetricsConfig;
    use crate::model::ModelConfig;
    use crate::optim::OptimizerConfig;
    use crate::parallel::ParallelConfig;
    use crate::tokenizer::ByteTokenizer;

    fn model() -> ModelConfig {
        ModelConfig {
            n_layer: 1,
            n_head: 4,
            n_embd: 16,
            vocab_size: 256,
            seq_len: 16,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    fn plan(world_size: usize, cp: usize, cp_comm: &str) -> TrainPlan {
        let train = TrainConfig {
            batch_size: 4,
            micro_batch_size: Some(1),
            ..TrainConfig::default()
        };
        let parallel = ParallelConfig {
            world_size,
            cp,
            cp_comm: cp_comm.into(),
            ..ParallelConfig::default()
        };
        let kernels = KernelsConfig {
            threads: world_size,
            ..KernelsConfig::default()
        };
        let (optimizer, metrics) = (OptimizerConfig::default(), MetricsConfig::default());
        TrainPlan::new(
            &model(),
            &train,
            &optimizer,
            0,
            &parallel,
            &kernels,
            &metrics,
            world_size,
        )
        .unwrap()
    }

    /// Every layout sums the loss the single-rank reference does: a plain
    /// loop over the validation windows `(e·B + j) mod W`, each forwarded
    /// whole on one rank. 1e-6 relative: the same f32 products, summed in
    /// another order (per rank, per CP chunk) before the f64 totals.
    #[test]
    fn every_rank_layout_gives_the_single_rank_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.txt");
        let text: String = (0..90).map(|i| ["ab ", "c€", "d\n"][i % 3]).collect();
        std::fs::write(&path, &text).unwrap();
        let data = DataConfig {
            source: "text".into(),
            path: Some(path),
            val_fraction: 0.5,
            ..DataConfig::default()
        };
        let source = open_data_source(&data, &model(), 0).unwrap();
        let layout = crate::model::ParamLayout::gpt2(&model());
        let params = crate::model::tests::o1_params(&layout, 3);
        let lengths = byte_lengths(&ByteTokenizer, 256);
        let what = EvalBatches {
            split: Split::Val,
            batches: 3,
            byte_lengths: Some(&lengths),
        };

        let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::new(Threads::new(1).unwrap()));
        let attention = LocalAttention::new(kernels.clone());
        let gpt = Gpt::new(model());
        let t = model().seq_len;
        let layout = attention.qkv_layout();
        let mut acts = Activations::new(&*kernels, &model(), 1, t, layout).unwrap();
        let positions: Vec<usize> = (0..t).collect();
        let (mut inputs, mut targets) = (vec![0; t], vec![0; t]);
        let windows = source.num_windows(Split::Val);
        assert!(
            windows > 4 && windows < 12,
            "{windows}: batches wrap around"
        );
        let (mut loss, mut count) = (0.0, 0);
        for g in 0..12 {
            source
                .read_window(Split::Val, g % windows, &mut inputs, &mut targets)
                .unwrap();
            let batch = Batch {
                tokens: &inputs,
                targets: &targets,
                positions: &positions,
            };
            let sum = gpt
                .forward(&*kernels, &attention, (&params).into(), batch, &mut acts)
                .unwrap();
            loss += sum.sum;
            count += sum.count;
        }

        for (world_size, cp, cp_comm) in [
            (1, 1, "p2p"),
            (2, 2, "p2p"),
            (2, 1, "p2p"),
            (4, 2, "all_gather"),
            (2, 2, "a2a"),
        ] {
            let plan = plan(world_size, cp, cp_comm);
            let strategy = BuiltinStrategy::from_name(cp_comm).unwrap();
            let builtin = |_, groups: Arc<RankGroups>, kernels| {
                Ok(strategy.build(groups.cp.clone(), kernels))
            };
            let totals =
                evaluate_on_layout(&plan, source.clone(), &params, &what, &builtin).unwrap();
            let name = format!("world_size {world_size}, cp {cp}, {cp_comm}");
            assert_eq!(totals.targets, count as u64, "{name}");
            // Byte-level text: one byte per target.
            assert_eq!(totals.bytes, Some(count as u64), "{name}");
            assert_eq!(totals.sequences, 12, "{name}");
            assert!(
                (totals.loss_sum - loss).abs() <= 1e-6 * loss,
                "{name}: {} vs {loss}",
                totals.loss_sum
            );
        }
    }
}
