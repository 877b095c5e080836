use std::fmt;

use super::available_memory::{AvailableMemory, human_bytes};
use super::memory::{MemoryEstimate, MemoryInputs};
use super::{TRACE_FILE, TraceWindow, TrainError};
use crate::attention::QkvLayout;
use crate::data::{BatchPlan, RankCoords, TrainConfig};
use crate::kernels::{KernelsConfig, Precision};
use crate::metrics::MetricsConfig;
use crate::model::{ModelConfig, flops_per_token};
use crate::optim::OptimizerConfig;
use crate::parallel::{GroupKind, ParallelConfig, ParallelGrid};
use crate::tensor_parallel::TpSharding;

/// Everything a run will do, derived from the configuration alone: every
/// cross-section rule is checked here, and the memory the run needs against
/// what the process may allocate, so `cptrain check` and `cptrain run`
/// reject the same configurations before anything is allocated.
#[derive(Clone, Debug)]
pub struct TrainPlan {
    /// The `[model]` section.
    pub model: ModelConfig,
    /// The `[train]` section.
    pub train: TrainConfig,
    /// The `[parallel]` section.
    pub parallel: ParallelConfig,
    /// Which rank is in which group.
    pub grid: ParallelGrid,
    /// Kernel threads of each rank.
    pub threads_per_rank: usize,
    /// Number format of the model's matrix products (`kernels.precision`).
    pub precision: Precision,
    /// Why the ranks and their kernel threads oversubscribe the cores, if
    /// they do ([`KernelsConfig::oversubscription`]).
    pub oversubscription: Option<String>,
    /// Parameters of the model (with `wpe`).
    pub params: usize,
    /// The memory this process will hold at its peak; the plan exists only
    /// if it fits in what the process may allocate.
    pub memory: MemoryEstimate,
    /// The steps whose timeline goes to `<out_dir>/trace.json`
    /// (`metrics.trace_start`, `metrics.trace_steps`).
    pub trace: Option<TraceWindow>,
}

impl TrainPlan {
    /// Validates the sections, alone and together; `optimizer_state` is the
    /// `f32` values per parameter the optimizer keeps
    /// ([`OptimizerFactory::state_per_parameter`](crate::optim::OptimizerFactory::state_per_parameter)),
    /// `local_ranks` is how many ranks this process runs (all of them for
    /// the local backend).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: &ModelConfig,
        train: &TrainConfig,
        optimizer: &OptimizerConfig,
        optimizer_state: usize,
        parallel: &ParallelConfig,
        kernels: &KernelsConfig,
        metrics: &MetricsConfig,
        local_ranks: usize,
    ) -> Result<Self, TrainError> {
        model.validate()?;
        optimizer.validate()?;
        kernels.validate().map_err(TrainError::Invalid)?;
        let grid = ParallelGrid::new(&parallel.grid_spec())?;
        let tp = parallel.tp;
        // The model must split over the TP group (whole heads per rank).
        TpSharding::new(model, tp)?;
        let cp = parallel.cp;
        if !(parallel.timeout_s.is_finite() && parallel.timeout_s > 0.0) {
            return Err(TrainError::Invalid(format!(
                "parallel.timeout_s = {} must be a positive number of seconds",
                parallel.timeout_s
            )));
        }
        if train.steps == 0 {
            return Err(TrainError::Invalid("train.steps must be at least 1".into()));
        }
        if train.out_dir.as_os_str().is_empty() {
            return Err(TrainError::Invalid(
                "train.out_dir is empty: the run would write metrics.jsonl, config.toml and \
                 checkpoints/ into the working directory; name a directory, e.g. \
                 train.out_dir = \"runs/default\""
                    .into(),
            ));
        }
        let memory = MemoryEstimate::new(&MemoryInputs {
            model,
            train,
            parallel,
            optimizer: &optimizer.kind,
            optimizer_state,
            dp: grid.world_size() / (tp * cp),
            layout: qkv_layout(cp),
            precision: kernels.precision,
            local_ranks,
            threads_per_rank: kernels.threads_per_rank(local_ranks),
            device_memory: crate::kernels::device_has_own_memory(kernels),
        });
        memory.check_fit(AvailableMemory::detect())?;
        let plan = TrainPlan {
            model: model.clone(),
            train: train.clone(),
            parallel: parallel.clone(),
            threads_per_rank: kernels.threads_per_rank(local_ranks),
            precision: kernels.precision,
            oversubscription: kernels.oversubscription(local_ranks),
            // Exact: a model that fits in memory has far fewer than 2^53.
            params: model.param_count() as usize,
            memory,
            trace: TraceWindow::from_config(metrics, train.steps)?,
            grid,
        };
        plan.batch_plan(0)?;
        let rows = plan.micro_batch_size() * plan.local_seq_len();
        if tp > 1 && parallel.sequence_parallel && !rows.is_multiple_of(tp) {
            return Err(TrainError::Invalid(format!(
                "parallel.sequence_parallel splits each micro-batch's {rows} token rows per rank \
                 (sequences per micro-batch × model.seq_len / parallel.cp) over the TP group, but \
                 {rows} is not divisible by parallel.tp = {tp}; change train.micro_batch_size or \
                 model.seq_len, or set parallel.sequence_parallel = false"
            )));
        }
        Ok(plan)
    }

    /// Where `rank` sits for data loading.
    pub fn rank_coords(&self, rank: usize) -> RankCoords {
        let c = self.grid.coords(rank);
        RankCoords {
            dp: self.dp(),
            dp_rank: c.dp,
            cp: self.parallel.cp,
            cp_rank: c.cp,
        }
    }

    /// The data-parallel degree.
    pub fn dp(&self) -> usize {
        self.grid.world_size() / (self.parallel.tp * self.parallel.cp)
    }

    /// The micro-batches and token chunks of `rank`.
    pub fn batch_plan(&self, rank: usize) -> Result<BatchPlan, TrainError> {
        Ok(BatchPlan::new(
            self.model.seq_len,
            self.train.batch_size,
            self.train.micro_batch_size,
            self.rank_coords(rank),
        )?)
    }

    /// Tokens of this rank's slice of each sequence.
    pub fn local_seq_len(&self) -> usize {
        self.model.seq_len / self.parallel.cp
    }

    /// Sequences in each micro-batch.
    pub fn micro_batch_size(&self) -> usize {
        self.train
            .micro_batch_size
            .unwrap_or(self.train.batch_size / self.dp())
    }

    /// Model FLOPs of one optimizer step (forward + backward, all ranks).
    pub fn flops_per_step(&self) -> f64 {
        flops_per_token(&self.model) * self.tokens_per_step() as f64
    }

    /// Tokens of one optimizer step (the global batch).
    pub fn tokens_per_step(&self) -> u64 {
        (self.train.batch_size as u64).saturating_mul(self.model.seq_len as u64)
    }

    /// How the rank's attention takes q, k, v: packed for whole sequences
    /// (the `local` strategy, chosen when `parallel.cp = 1`), head-major for
    /// every context-parallel strategy.
    pub fn qkv_layout(&self) -> QkvLayout {
        qkv_layout(self.parallel.cp)
    }
}

/// The layout of the strategy the rank context wires for `cp`.
fn qkv_layout(cp: usize) -> QkvLayout {
    if cp == 1 {
        QkvLayout::Packed
    } else {
        QkvLayout::HeadMajor
    }
}

/// Causal attention work of every CP rank, in score entries per head and
/// sequence, under the zigzag split and under a contiguous split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttentionBalance {
    /// Zigzag: rank `r` holds chunks `r` and `2·cp−1−r`.
    pub zigzag: Vec<u64>,
    /// Contiguous: rank `r` holds tokens `[r·S/cp, (r+1)·S/cp)`.
    pub contiguous: Vec<u64>,
}

impl AttentionBalance {
    /// The work of each rank for sequences of `seq_len` tokens over `cp` ranks
    /// (`seq_len` divisible by `2·cp`): query `q` attends to `q + 1` keys.
    pub fn new(seq_len: usize, cp: usize) -> Self {
        let work = |range: std::ops::Range<usize>| range.map(|q| q as u64 + 1).sum::<u64>();
        let chunk = seq_len / (2 * cp);
        let local = seq_len / cp;
        AttentionBalance {
            zigzag: (0..cp)
                .map(|r| {
                    work(r * chunk..(r + 1) * chunk)
                        + work((2 * cp - 1 - r) * chunk..(2 * cp - r) * chunk)
                })
                .collect(),
            contiguous: (0..cp).map(|r| work(r * local..(r + 1) * local)).collect(),
        }
    }

    /// Busiest over least busy rank: 1.0 is perfect balance.
    pub fn ratio(work: &[u64]) -> f64 {
        let max = work.iter().copied().max().unwrap_or(0);
        let min = work.iter().copied().min().unwrap_or(0).max(1);
        max as f64 / min as f64
    }
}

impl fmt::Display for TrainPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.model;
        let p = &self.parallel;
        writeln!(
            f,
            "model      GPT-2 L{} d{} h{} T{} V{}: {:.2} M parameters",
            m.n_layer,
            m.n_embd,
            m.n_head,
            m.seq_len,
            m.vocab_size,
            self.params as f64 / 1e6
        )?;
        writeln!(
            f,
            "batch      {} sequences x {} tokens = {} tokens/step, micro-batches of {} per rank",
            self.train.batch_size,
            m.seq_len,
            self.tokens_per_step(),
            self.micro_batch_size()
        )?;
        writeln!(
            f,
            "compute    {:.2} GFLOP/step ({:.0} FLOP/token: 6N + 12·L·d·T)",
            self.flops_per_step() / 1e9,
            flops_per_token(m)
        )?;
        let cp_comm = if p.cp > 1 {
            p.cp_comm.as_str()
        } else {
            "none (cp = 1)"
        };
        let sp = match (p.tp > 1, p.sequence_parallel) {
            (true, true) => " | sequence parallel",
            _ => "",
        };
        writeln!(
            f,
            "parallel   backend {} | world {} = tp {} x cp {} x dp {}{sp} | cp_comm {} | {} kernel thread(s)/rank",
            p.backend,
            self.grid.world_size(),
            p.tp,
            p.cp,
            self.dp(),
            cp_comm,
            self.threads_per_rank
        )?;
        if let Some(warning) = &self.oversubscription {
            writeln!(f, "warning    {warning}")?;
        }
        writeln!(
            f,
            "sequence   {} tokens/rank: each sequence is split into {} chunks (zigzag)",
            self.local_seq_len(),
            2 * p.cp
        )?;
        let mem = &self.memory;
        writeln!(
            f,
            "memory     {} per process at the peak, {} per rank:",
            human_bytes(mem.total()),
            human_bytes(mem.rank_bytes())
        )?;
        for item in &mem.per_rank {
            writeln!(
                f,
                "             {:>10} {}",
                human_bytes(item.bytes),
                item.what
            )?;
        }
        if !mem.per_rank_device.is_empty() {
            writeln!(
                f,
                "device     {} per rank in its device's own memory (not counted above):",
                human_bytes(mem.device_bytes()),
            )?;
            for item in &mem.per_rank_device {
                writeln!(
                    f,
                    "             {:>10} {}",
                    human_bytes(item.bytes),
                    item.what
                )?;
            }
        }
        for item in &mem.per_process {
            writeln!(
                f,
                "             {:>10} {} (once per process)",
                human_bytes(item.bytes),
                item.what
            )?;
        }
        if let Some(w) = self.trace {
            writeln!(
                f,
                "trace      steps {}-{}, every rank and phase -> {}",
                w.first,
                w.last,
                self.train.out_dir.join(TRACE_FILE).display()
            )?;
        }
        if p.cp > 1 {
            let balance = AttentionBalance::new(m.seq_len, p.cp);
            writeln!(
                f,
                "balance    causal attention work per CP rank, max/min: {:.2} with the zigzag split \
                 (vs {:.2} if contiguous)",
                AttentionBalance::ratio(&balance.zigzag),
                AttentionBalance::ratio(&balance.contiguous)
            )?;
        }
        writeln!(f, "grid")?;
        let kinds = [GroupKind::Tp, GroupKind::Cp, GroupKind::Dp, GroupKind::DpCp];
        for kind in kinds
            .into_iter()
            .filter(|&k| k != GroupKind::Tp || p.tp > 1)
        {
            let groups: Vec<String> = self
                .grid
                .groups(kind)
                .iter()
                .map(|g| format!("{g:?}"))
                .collect();
            writeln!(f, "  {:<6} {}", kind.name(), groups.join(" "))?;
        }
        let sharding = TpSharding::new(m, p.tp).ok().filter(|_| p.tp > 1);
        for rank in 0..self.grid.world_size() {
            if let Ok(batch) = self.batch_plan(rank) {
                let c = self.grid.coords(rank);
                let positions = batch.positions();
                let spans = spans(&positions);
                let tp = match &sharding {
                    Some(s) => format!("tp_rank {} ({}) ", c.tp, s.slices(c.tp)),
                    None => String::new(),
                };
                writeln!(
                    f,
                    "  rank {rank:<3} {tp}cp_rank {} dp_rank {} tokens {}",
                    c.cp, c.dp, spans
                )?;
            }
        }
        Ok(())
    }
}

/// `[0,1,2,6,7]` → `0..3 6..8`.
fn spans(positions: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut start = None;
    for (i, &p) in positions.iter().enumerate() {
        let s = *start.get_or_insert(p);
        let next = positions.get(i + 1);
        if next != Some(&(p + 1)) {
            out.push(format!("{s}..{}", p + 1));
            start = None;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamWFactory, OptimizerFactory};

    fn sections() -> (ModelConfig, TrainConfig, ParallelConfig, KernelsConfig) {
        let model = ModelConfig {
            n_layer: 1,
            n_head: 4,
            n_embd: 16,
            vocab_size: 16,
            seq_len: 16,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        };
        let train = TrainConfig {
            batch_size: 4,
            ..TrainConfig::default()
        };
        (
            model,
            train,
            ParallelConfig::default(),
            KernelsConfig::default(),
        )
    }

    /// The plan of these sections with the default optimizer and metrics.
    fn plan_of(
        m: &ModelConfig,
        t: &TrainConfig,
        p: &ParallelConfig,
        k: &KernelsConfig,
        local_ranks: usize,
    ) -> Result<TrainPlan, TrainError> {
        let (optimizer, metrics) = (OptimizerConfig::default(), MetricsConfig::default());
        let adamw_state = AdamWFactory(optimizer.clone()).state_per_parameter();
        TrainPlan::new(m, t, &optimizer, adamw_state, p, k, &metrics, local_ranks)
    }

    type Edit = fn(&mut ModelConfig, &mut TrainConfig, &mut ParallelConfig);

    #[test]
    fn cross_section_rules_name_the_keys() {
        let cases: [(&str, Edit, &str); 4] = [
            (
                "cp does not split seq_len",
                |m, _, p| {
                    m.seq_len = 12;
                    p.world_size = 4;
                    p.cp = 4;
                },
                "multiple of 8",
            ),
            (
                "batch does not split over dp",
                |_, t, p| {
                    p.world_size = 3;
                    t.batch_size = 4;
                },
                "batch_size",
            ),
            (
                "sequence parallelism must split the rows",
                |m, t, p| {
                    m.seq_len = 6;
                    t.batch_size = 1;
                    p.world_size = 4;
                    p.tp = 4;
                },
                "6 is not divisible by parallel.tp = 4",
            ),
            (
                "tp must split the heads",
                |_, _, p| {
                    p.world_size = 3;
                    p.tp = 3;
                },
                "not divisible by parallel.tp = 3",
            ),
        ];
        for (name, edit, expected) in cases {
            let (mut m, mut t, mut p, k) = sections();
            edit(&mut m, &mut t, &mut p);
            let err = plan_of(&m, &t, &p, &k, p.world_size)
                .expect_err(name)
                .to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn zigzag_balances_causal_work_and_contiguous_does_not() {
        // S = 8, cp = 2, chunks of 2: zigzag rank 0 holds queries 0,1,6,7
        // (1+2+7+8 = 18 keys), rank 1 holds 2..6 (3+4+5+6 = 18). Contiguous:
        // 1+2+3+4 = 10 and 5+6+7+8 = 26.
        let b = AttentionBalance::new(8, 2);
        assert_eq!(b.zigzag, vec![18, 18]);
        assert_eq!(b.contiguous, vec![10, 26]);
        let b = AttentionBalance::new(4096, 4);
        assert!(AttentionBalance::ratio(&b.zigzag) < 1.001);
        assert!(AttentionBalance::ratio(&b.contiguous) > 6.9);
    }

    /// The plan sizes activations for the layout of the strategy the rank
    /// context wires: `local` (packed) at cp = 1, a context-parallel one
    /// (head-major, see the CP strategy tests) above.
    #[test]
    fn the_plan_estimates_activations_for_the_wired_strategys_layout() {
        use crate::attention::{Attention, LocalAttention};
        use crate::kernels::CpuKernels;
        let (m, t, mut p, k) = sections();
        let local = LocalAttention::new(std::sync::Arc::new(CpuKernels::default()));
        let plan = plan_of(&m, &t, &p, &k, 4).unwrap();
        assert_eq!(plan.qkv_layout(), local.qkv_layout());
        p.world_size = 2;
        p.cp = 2;
        let plan = plan_of(&m, &t, &p, &k, 4).unwrap();
        assert_eq!(plan.qkv_layout(), QkvLayout::HeadMajor);
    }

    #[test]
    fn the_plan_shows_each_ranks_zigzag_chunks() {
        let (m, t, mut p, k) = sections();
        p.world_size = 4;
        p.cp = 2;
        let plan = plan_of(&m, &t, &p, &k, 4).unwrap();
        assert_eq!(plan.dp(), 2);
        assert_eq!(plan.local_seq_len(), 8);
        let text = plan.to_string();
        assert!(
            text.contains("rank 0   cp_rank 0 dp_rank 0 tokens 0..4 12..16"),
            "{text}"
        );
        assert!(
            text.contains("rank 1   cp_rank 1 dp_rank 0 tokens 4..12"),
            "{text}"
        );
        assert!(text.contains("world 4 = tp 1 x cp 2 x dp 2"), "{text}");
    }
}
