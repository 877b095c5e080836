//! The memory a run holds at its peak, per process, estimated from the
//! configuration before anything is allocated, and the check that it fits.
//!
//! Sizes are `f64` bytes: any configuration, however absurd, gives a finite
//! (or infinite) estimate and never an overflow.

use std::fmt;

use super::available_memory::{AvailableMemory, human_bytes};
use crate::attention::QkvLayout;
use crate::data::TrainConfig;
use crate::kernels::Precision;
use crate::model::{Activations, LocalShape, ModelConfig};
use crate::parallel::ParallelConfig;
use crate::tensor_parallel::TpSharding;

/// Bytes past which no machine has the memory, whatever it reports.
const ADDRESS_SPACE: f64 = 9.2e18;

/// Bytes a kernel thread costs, about: the stack pages it touches and the
/// kernel's and the team's bookkeeping.
const THREAD_BYTES: f64 = 64.0 * 1024.0;

/// The per-rank items a device with memory of its own holds: the first
/// three, the state, the activations and the exchange buffers.
const DEVICE_ITEMS: usize = 3;

/// One kind of buffer: its bytes and the keys that size it.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryItem {
    /// What the buffer holds.
    pub what: String,
    /// Bytes.
    pub bytes: f64,
    /// The keys that size it, with their values (`model.n_embd = 64, …`).
    pub keys: String,
}

/// What one process holds at its peak: the buffers of each of its ranks,
/// and those it holds once. Evaluation reuses the training buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryEstimate {
    /// Ranks the process runs (all of them with the local backend).
    pub local_ranks: usize,
    /// Buffers every rank keeps in its device's own memory (a GPU's): the
    /// training state, the activations and the exchange buffers; empty when
    /// the device computes in host memory.
    pub per_rank_device: Vec<MemoryItem>,
    /// Buffers of every rank in host memory.
    pub per_rank: Vec<MemoryItem>,
    /// Buffers of the process, shared by its ranks.
    pub per_process: Vec<MemoryItem>,
}

/// Everything the estimate depends on: the sections, the data-parallel
/// degree, the attention layout and the ranks of this process.
pub struct MemoryInputs<'a> {
    /// `[model]`.
    pub model: &'a ModelConfig,
    /// `[train]`.
    pub train: &'a TrainConfig,
    /// `[parallel]`.
    pub parallel: &'a ParallelConfig,
    /// `optimizer.kind`, the optimizer the state item names.
    pub optimizer: &'a str,
    /// Its `f32` values of state per parameter
    /// ([`OptimizerFactory::state_per_parameter`](crate::optim::OptimizerFactory::state_per_parameter)).
    pub optimizer_state: usize,
    /// `world_size / (tp · cp)`.
    pub dp: usize,
    /// How the attention strategy takes q, k, v.
    pub layout: QkvLayout,
    /// `kernels.precision`: bf16 products keep their operands in bf16.
    pub precision: Precision,
    /// Ranks this process runs.
    pub local_ranks: usize,
    /// Kernel threads of each rank.
    pub threads_per_rank: usize,
    /// Whether the device computes in memory of its own (a GPU's).
    pub device_memory: bool,
}

/// A run the memory of this process cannot hold.
#[derive(Debug, thiserror::Error)]
#[error(
    "the run does not fit in memory: it needs about {needed} in this process, and {available} \
     is available.\n{estimate}Lower the keys of the largest item (with the local backend, \
     parallel.world_size multiplies the per-rank items); `cptrain check` prints the estimate \
     of any configuration.",
    needed = human_bytes(estimate.total()),
)]
pub struct MemoryError {
    /// The estimate, item by item.
    pub estimate: MemoryEstimate,
    /// What the process may still allocate, and where that was read.
    pub available: AvailableMemory,
}

impl MemoryEstimate {
    /// The estimate of a run: per rank, parameters, gradients and the
    /// optimizer's state (f32), the activations of one micro-batch, the
    /// attention strategy's exchange buffers, the batches of a step and the
    /// kernel threads; per process, the start weights and the `model.init`
    /// file read whole.
    pub fn new(inputs: &MemoryInputs<'_>) -> Self {
        let MemoryInputs {
            model: m,
            train: t,
            parallel: p,
            ..
        } = inputs;
        let params = m.param_count();
        // Under tensor parallelism a rank holds its shard (the plan has
        // checked that the model splits; an unsplittable one counts whole).
        let sharding = TpSharding::new(m, p.tp).ok();
        let rank_params = sharding
            .as_ref()
            .map_or(params, TpSharding::params_per_rank);
        let sp = p.sequence_parallel;
        let shape = sharding.map_or_else(|| LocalShape::full(m), |s| s.local_shape(0, sp));
        let shape_keys = format!(
            "model.n_layer = {}, model.n_embd = {}, model.vocab_size = {}, model.seq_len = {}",
            m.n_layer, m.n_embd, m.vocab_size, m.seq_len
        );
        let state_keys = format!(
            "optimizer.kind = {:?} ({} per parameter), {shape_keys}, parallel.tp = {}",
            inputs.optimizer, inputs.optimizer_state, p.tp
        );
        let micro = t
            .micro_batch_size
            .unwrap_or(t.batch_size / inputs.dp.max(1)) as f64;
        let local_len = m.seq_len as f64 / p.cp.max(1) as f64;
        let micro_keys = match t.micro_batch_size {
            Some(size) => format!("train.micro_batch_size = {size}"),
            None => format!(
                "train.batch_size = {} / {} data-parallel ranks",
                t.batch_size, inputs.dp
            ),
        };
        let per_rank = vec![
            MemoryItem {
                what: format!(
                    "parameters, gradients and the state of optimizer {:?} (f32)",
                    inputs.optimizer
                ),
                bytes: 4.0 * (2 + inputs.optimizer_state) as f64 * rank_params,
                keys: state_keys,
            },
            MemoryItem {
                what: "activations of one micro-batch".into(),
                bytes: activation_bytes(&shape, micro, local_len, inputs.layout, inputs.precision),
                keys: format!(
                    "{micro_keys}, model.seq_len = {} / parallel.cp = {}, model.n_embd = {}, \
                     model.n_layer = {}, model.vocab_size = {}, parallel.tp = {}, \
                     kernels.precision = {}",
                    m.seq_len, p.cp, m.n_embd, m.n_layer, m.vocab_size, p.tp, inputs.precision
                ),
            },
            MemoryItem {
                what: "attention exchange buffers (CP)".into(),
                bytes: 4.0
                    * exchange_floats_per_row(p)
                    * micro
                    * local_len
                    * shape.attn_width() as f64,
                keys: format!(
                    "parallel.cp_comm = \"{}\", parallel.cp = {}, {micro_keys}, model.n_embd = {}",
                    p.cp_comm, p.cp, m.n_embd
                ),
            },
            MemoryItem {
                what: "token batches of one step".into(),
                bytes: batch_bytes(t, inputs.dp, micro, local_len, m.seq_len),
                keys: format!(
                    "train.batch_size = {}, train.micro_batch_size = {}, model.seq_len = {}",
                    t.batch_size,
                    t.micro_batch_size
                        .map_or("(unset: the rank's whole share)".into(), |s| s.to_string()),
                    m.seq_len
                ),
            },
            MemoryItem {
                what: "kernel threads".into(),
                bytes: THREAD_BYTES * inputs.threads_per_rank as f64,
                keys: format!("kernels.threads: {} per rank", inputs.threads_per_rank),
            },
        ];
        let init_file = m
            .init
            .as_deref()
            .and_then(|path| std::fs::metadata(path).ok())
            .filter(|meta| meta.is_file())
            .map_or(0.0, |meta| meta.len() as f64);
        let per_process = vec![
            MemoryItem {
                what: "start weights (f32)".into(),
                bytes: 4.0 * params,
                keys: shape_keys,
            },
            MemoryItem {
                what: "model.init file, read whole".into(),
                bytes: init_file,
                keys: format!(
                    "model.init = {}",
                    m.init
                        .as_deref()
                        .map_or("(not set)".into(), |p| p.display().to_string())
                ),
            },
        ];
        // The state, activations and exchange buffers are what the device
        // allocates; the rest stays on the host.
        let (on_device, per_rank): (Vec<_>, Vec<_>) = per_rank
            .into_iter()
            .enumerate()
            .filter(|(_, i)| i.bytes > 0.0)
            .partition(|&(n, _)| inputs.device_memory && n < DEVICE_ITEMS);
        let items = |numbered: Vec<(usize, MemoryItem)>| numbered.into_iter().map(|(_, i)| i);
        MemoryEstimate {
            local_ranks: inputs.local_ranks,
            per_rank_device: items(on_device).collect(),
            per_rank: items(per_rank).collect(),
            per_process: per_process.into_iter().filter(|i| i.bytes > 0.0).collect(),
        }
    }

    /// Host bytes of one rank.
    pub fn rank_bytes(&self) -> f64 {
        self.per_rank.iter().map(|i| i.bytes).sum()
    }

    /// Bytes one rank keeps in its device's own memory (0 when the device
    /// computes in host memory).
    pub fn device_bytes(&self) -> f64 {
        self.per_rank_device.iter().map(|i| i.bytes).sum()
    }

    /// Bytes of the whole process: every local rank and the shared buffers.
    pub fn total(&self) -> f64 {
        self.local_ranks as f64 * self.rank_bytes()
            + self.per_process.iter().map(|i| i.bytes).sum::<f64>()
    }

    /// Refuses an estimate above what the process may allocate; without a
    /// figure (not Linux), only one beyond any address space.
    pub fn check_fit(&self, available: Option<AvailableMemory>) -> Result<(), MemoryError> {
        let available = available.unwrap_or(AvailableMemory {
            bytes: ADDRESS_SPACE as u64,
            source: "the address space; this system reports no available memory".into(),
        });
        let total = self.total();
        if total.is_nan() || total > available.bytes as f64 {
            return Err(MemoryError {
                estimate: self.clone(),
                available,
            });
        }
        Ok(())
    }
}

/// Activation bytes of `micro` sequences of `len` tokens on a rank of
/// local widths `shape` (fractional sizes of a configuration that the plan
/// will refuse anyway are fine here).
fn activation_bytes(
    shape: &LocalShape,
    micro: f64,
    len: f64,
    layout: QkvLayout,
    precision: Precision,
) -> f64 {
    // `Activations::bytes` is linear in the rows: scale one row.
    micro * len * Activations::bytes_with_shape(shape, 1, 1, layout, precision)
}

/// `f32` elements per token row and embedding column that the CP strategy
/// allocates during one attention call: the ring's K/V blocks in flight,
/// partial outputs and gradient blocks (p2p), the gathered K/V of the whole
/// sequence and their gradients (all_gather), or the all-to-all send and
/// receive buffers and the head-scattered q, k, v and their gradients (a2a).
fn exchange_floats_per_row(p: &ParallelConfig) -> f64 {
    if p.cp <= 1 {
        return 0.0;
    }
    match p.cp_comm.as_str() {
        "all_gather" => 8.0 * p.cp as f64,
        "a2a" => 10.0,
        _ => 8.0,
    }
}

/// The rank's micro-batches of one step (token ids and targets, `u32`, and
/// positions, `usize`) and the window it reads a sequence into.
fn batch_bytes(t: &TrainConfig, dp: usize, micro: f64, local_len: f64, seq_len: usize) -> f64 {
    let micro_batches = (t.batch_size as f64 / dp.max(1) as f64 / micro.max(1.0)).ceil();
    micro_batches * (micro * local_len * 8.0 + local_len * 8.0) + 8.0 * (seq_len as f64 + 1.0)
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |bytes: f64| format!("{:>10}", human_bytes(bytes));
        if !self.per_rank_device.is_empty() {
            writeln!(f, "  per rank on its device (not host memory):")?;
            for item in &self.per_rank_device {
                writeln!(f, "    {} {}: {}", size(item.bytes), item.what, item.keys)?;
            }
        }
        writeln!(f, "  per rank ({} in this process):", self.local_ranks)?;
        for item in &self.per_rank {
            writeln!(f, "    {} {}: {}", size(item.bytes), item.what, item.keys)?;
        }
        writeln!(f, "  once per process:")?;
        for item in &self.per_process {
            writeln!(f, "    {} {}: {}", size(item.bytes), item.what, item.keys)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(
        model: ModelConfig,
        parallel: ParallelConfig,
        local_ranks: usize,
    ) -> MemoryEstimate {
        estimate_on(model, parallel, local_ranks, false)
    }

    fn estimate_on(
        model: ModelConfig,
        parallel: ParallelConfig,
        local_ranks: usize,
        device_memory: bool,
    ) -> MemoryEstimate {
        let train = TrainConfig {
            batch_size: 4,
            ..TrainConfig::default()
        };
        let dp = parallel.world_size / parallel.cp;
        let layout = if parallel.cp == 1 {
            QkvLayout::Packed
        } else {
            QkvLayout::HeadMajor
        };
        MemoryEstimate::new(&MemoryInputs {
            model: &model,
            train: &train,
            parallel: &parallel,
            optimizer: "adamw",
            optimizer_state: 2,
            dp,
            layout,
            precision: Precision::F32,
            local_ranks,
            threads_per_rank: 1,
            device_memory,
        })
    }

    /// On a device with memory of its own, the state, activations and
    /// exchange buffers leave the host's estimate (and its fit check) for
    /// the device's; the host keeps batches, threads and start weights.
    #[test]
    fn a_device_with_its_own_memory_takes_the_state_and_activations() {
        let parallel = ParallelConfig {
            world_size: 2,
            cp: 2,
            ..ParallelConfig::default()
        };
        let host = estimate_on(model(64), parallel.clone(), 2, false);
        let gpu = estimate_on(model(64), parallel, 2, true);
        let names = |items: &[MemoryItem]| items.iter().map(|i| i.what.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&gpu.per_rank_device),
            [
                "parameters, gradients and the state of optimizer \"adamw\" (f32)",
                "activations of one micro-batch",
                "attention exchange buffers (CP)"
            ]
        );
        assert_eq!(gpu.device_bytes() + gpu.rank_bytes(), host.rank_bytes());
        assert!(host.per_rank_device.is_empty());
        assert_eq!(
            names(&gpu.per_rank),
            ["token batches of one step", "kernel threads"]
        );
        // A state far beyond the host's memory fits: the host keeps only the
        // start weights (1.6 GB here) and the batches.
        let big = estimate_on(model(4096), ParallelConfig::default(), 1, true);
        assert!(big.device_bytes() > 1e9);
        assert!(big.check_fit(available(4 << 30)).is_ok());
        assert!(
            estimate_on(model(4096), ParallelConfig::default(), 1, false)
                .check_fit(available(4 << 30))
                .is_err()
        );
    }

    fn model(n_embd: usize) -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_head: 4,
            n_embd,
            vocab_size: 16,
            seq_len: 64,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    fn available(bytes: u64) -> Option<AvailableMemory> {
        Some(AvailableMemory {
            bytes,
            source: "test".into(),
        })
    }

    /// The state item is the parameters, their gradients and the
    /// optimizer's declared values per parameter, f32 each, and names the
    /// optimizer.
    #[test]
    fn the_state_counts_the_optimizers_values_per_parameter() {
        let (m, train, parallel) = (model(64), TrainConfig::default(), ParallelConfig::default());
        for (optimizer, values) in [("sgd", 0), ("momentum", 1), ("adamw", 2), ("shampoo", 5)] {
            let e = MemoryEstimate::new(&MemoryInputs {
                model: &m,
                train: &train,
                parallel: &parallel,
                optimizer,
                optimizer_state: values,
                dp: 1,
                layout: QkvLayout::Packed,
                precision: Precision::F32,
                local_ranks: 1,
                threads_per_rank: 1,
                device_memory: false,
            });
            let state = &e.per_rank[0];
            assert!(state.what.contains(&format!("optimizer \"{optimizer}\"")));
            assert_eq!(state.bytes, 4.0 * (2 + values) as f64 * m.param_count());
            let named = format!("optimizer.kind = \"{optimizer}\" ({values} per parameter)");
            assert!(state.keys.contains(&named), "{}", state.keys);
        }
    }

    #[test]
    fn the_state_is_four_f32_copies_of_the_parameters_per_rank() {
        let m = model(64);
        let e = estimate(m.clone(), ParallelConfig::default(), 1);
        assert_eq!(e.per_rank[0].bytes, 16.0 * m.param_count());
        assert_eq!(e.per_process[0].bytes, 4.0 * m.param_count());
        let with_two = estimate(m, ParallelConfig::default(), 2);
        assert_eq!(with_two.total() - e.total(), e.rank_bytes());
    }

    /// The activation item is what `Activations::new` allocates for the
    /// rank's micro-batch and share of the sequence.
    #[test]
    fn activations_are_those_of_the_ranks_micro_batch() {
        let parallel = ParallelConfig {
            world_size: 2,
            cp: 2,
            ..ParallelConfig::default()
        };
        let e = estimate(model(64), parallel, 2);
        let want = Activations::bytes(&model(64), 4, 32, QkvLayout::HeadMajor, Precision::F32);
        assert_eq!(e.per_rank[1].bytes, want);
        assert!(e.per_rank[2].what.contains("CP"));
    }

    #[test]
    fn an_absurd_model_is_refused_naming_its_keys_and_the_limit() {
        let e = estimate(model(1_000_000), ParallelConfig::default(), 1);
        let err = e.check_fit(available(64 << 30)).unwrap_err().to_string();
        for text in [
            "model.n_embd = 1000000",
            "64.0 GiB (test)",
            "TiB in this process",
        ] {
            assert!(err.contains(text), "`{text}` in {err}");
        }
        assert!(
            estimate(model(64), ParallelConfig::default(), 1)
                .check_fit(available(64 << 30))
                .is_ok()
        );
    }

    #[test]
    fn sizes_beyond_any_integer_are_refused_without_overflow() {
        let absurd = ModelConfig {
            n_layer: usize::MAX,
            n_embd: usize::MAX,
            seq_len: usize::MAX,
            ..model(64)
        };
        let e = estimate(absurd, ParallelConfig::default(), usize::MAX);
        assert!(e.check_fit(None).is_err());
    }
}
