//! Launch configurations (grid, block, dynamic shared memory) of every
//! kernel, and the structs some kernels take by value. The real launch and
//! cuda-emu both take their configuration from here, so the emulation
//! tests the configuration too.
//!
//! Sizes reach the kernels as `i32` (rows, widths) or `i64` (element
//! counts): [`to_i32`] and [`to_i64`] refuse what does not fit.

use super::CudaError;

/// Grid and block sizes (x, y, z) and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    /// Blocks in x, y, z.
    pub grid: [u32; 3],
    /// Threads per block in x, y, z.
    pub block: [u32; 3],
    /// Dynamic shared memory per block, in bytes.
    pub shared_bytes: u32,
}

/// Threads per block of the elementwise and column kernels.
pub const BLOCK: u32 = 256;
/// The most blocks of a grid-stride elementwise kernel (more gains nothing
/// on a GPU with a few hundred SMs).
const MAX_GRID_STRIDE_BLOCKS: usize = 8192;
/// Rows per block of the warp-per-row kernels (LayerNorm).
pub const ROWS_PER_BLOCK: u32 = 8;
/// Threads of the block-per-row (cross-entropy) and single-block kernels.
pub const ROW_BLOCK: u32 = 256;
/// Threads of the single-block reductions (`loss_sum`, `sum_partials`).
pub const REDUCE_BLOCK: u32 = 1024;
/// Blocks of `sum_squares_partials` at most (the partial count).
pub const MAX_SQUARE_PARTIALS: usize = 1024;
/// Query (or key) rows per attention block: one thread each.
pub const ATTENTION_ROWS: u32 = 64;
/// Rows per shared-memory tile of the attention kernels (`CPT_ATTN_TILE`).
pub const ATTENTION_TILE: usize = 32;
/// The widest head the attention kernels take (`CPT_ATTN_MAX_D`).
pub const ATTENTION_MAX_HEAD_DIM: usize = 128;

fn linear(blocks: usize, threads: u32, shared_bytes: u32) -> LaunchConfig {
    LaunchConfig {
        grid: [blocks.max(1) as u32, 1, 1],
        block: [threads, 1, 1],
        shared_bytes,
    }
}

/// A grid-stride kernel over `n` elements.
pub fn elementwise(n: usize) -> LaunchConfig {
    linear(
        n.div_ceil(BLOCK as usize).min(MAX_GRID_STRIDE_BLOCKS),
        BLOCK,
        0,
    )
}

/// One warp per row, [`ROWS_PER_BLOCK`] rows per block.
pub fn warp_per_row(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [rows.div_ceil(ROWS_PER_BLOCK as usize).max(1) as u32, 1, 1],
        block: [32, ROWS_PER_BLOCK, 1],
        shared_bytes: 0,
    }
}

/// One [`ROW_BLOCK`]-thread block per row.
pub fn block_per_row(rows: usize) -> LaunchConfig {
    linear(rows, ROW_BLOCK, 0)
}

/// One [`REDUCE_BLOCK`]-thread block.
pub fn single_block() -> LaunchConfig {
    linear(1, REDUCE_BLOCK, 0)
}

/// How a column reduction splits `rows` into chunks: (rows per chunk,
/// chunks). At most about 1024 chunks, at least 32 rows each.
pub fn row_chunks(rows: usize) -> (usize, usize) {
    let per_chunk = rows.div_ceil(1024).max(32);
    (per_chunk, rows.div_ceil(per_chunk).max(1))
}

/// Stage 1 of a column reduction (`column_sum_partials`,
/// `layernorm_param_partials`): a thread per column, a grid row per chunk.
pub fn column_partials(rows: usize, width: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [
            width.div_ceil(BLOCK as usize).max(1) as u32,
            row_chunks(rows).1 as u32,
            1,
        ],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
    }
}

/// Stage 2 of a column reduction (`add_column_partials`): a thread per column.
pub fn column_reduce(width: usize) -> LaunchConfig {
    linear(width.div_ceil(BLOCK as usize), BLOCK, 0)
}

/// `sum_squares_partials` over `n` values: at most [`MAX_SQUARE_PARTIALS`]
/// blocks, one partial each (a fixed number for a given `n`, so the sum is
/// deterministic).
pub fn sum_squares(n: usize) -> LaunchConfig {
    linear(
        n.div_ceil(4 * BLOCK as usize).min(MAX_SQUARE_PARTIALS),
        BLOCK,
        0,
    )
}

/// `embedding_backward`: a block per bucket along x, blocks along y cover
/// the channels.
pub fn embedding_backward(buckets: usize, channels: usize) -> LaunchConfig {
    LaunchConfig {
        grid: [
            buckets.max(1) as u32,
            channels.div_ceil(BLOCK as usize).max(1) as u32,
            1,
        ],
        block: [BLOCK, 1, 1],
        shared_bytes: 0,
    }
}

/// A thread per row (`attention_merge`).
pub fn thread_per_row(rows: usize) -> LaunchConfig {
    linear(rows.div_ceil(BLOCK as usize), BLOCK, 0)
}

/// Which keys each query row sees; `cptrain::kernels::Mask` as the kernels
/// number it.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every row sees every key.
    None = 0,
    /// Top-left causal: row `i` sees keys `0..=i`.
    Causal = 1,
    /// Bottom-right causal: row `i` of `m` sees keys `0..=i + (n − m)`.
    CausalBottomRight = 2,
}

impl From<cptrain::kernels::Mask> for AttentionMask {
    fn from(mask: cptrain::kernels::Mask) -> Self {
        match mask {
            cptrain::kernels::Mask::None => AttentionMask::None,
            cptrain::kernels::Mask::Causal => AttentionMask::Causal,
            cptrain::kernels::Mask::CausalBottomRight => AttentionMask::CausalBottomRight,
        }
    }
}

/// The attention kernels' shape argument (`AttentionShape` in
/// `attention.cu`), built from a `cptrain::kernels::BatchedAttention`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionShape {
    /// (batch, head) slabs.
    pub slabs: i32,
    /// Width of a head.
    pub head_dim: i32,
    /// Query rows per slab in the buffers.
    pub q_per_slab: i32,
    /// First selected query row of each slab.
    pub q_start: i32,
    /// Selected query rows per slab.
    pub q_count: i32,
    /// Key rows per slab in the buffers.
    pub kv_per_slab: i32,
    /// First selected key row.
    pub kv_start: i32,
    /// Selected key rows.
    pub kv_count: i32,
    /// An [`AttentionMask`] value.
    pub mask: i32,
    /// Score scale.
    pub scale: f32,
}

impl AttentionShape {
    /// The shape of a batched attention call; fails on a head wider than
    /// [`ATTENTION_MAX_HEAD_DIM`], an empty head or a selection outside its slab.
    pub fn new(a: &cptrain::kernels::BatchedAttention) -> Result<Self, CudaError> {
        let bad = |problem: String| CudaError::Shape {
            kernel: "attention",
            problem,
        };
        if a.head_dim == 0 || a.head_dim > ATTENTION_MAX_HEAD_DIM {
            return Err(bad(format!(
                "head_dim {} is not in 1..={ATTENTION_MAX_HEAD_DIM}",
                a.head_dim
            )));
        }
        for (name, r) in [("q_rows", a.q_rows), ("kv_rows", a.kv_rows)] {
            if r.start + r.count > r.per_slab {
                return Err(bad(format!("{name} {r:?} reach outside the slab")));
            }
        }
        let int = |v: usize, what: &'static str| to_i32(v, "attention", what);
        Ok(AttentionShape {
            slabs: int(a.slabs, "slabs")?,
            head_dim: a.head_dim as i32,
            q_per_slab: int(a.q_rows.per_slab, "q rows")?,
            q_start: int(a.q_rows.start, "q rows")?,
            q_count: int(a.q_rows.count, "q rows")?,
            kv_per_slab: int(a.kv_rows.per_slab, "kv rows")?,
            kv_start: int(a.kv_rows.start, "kv rows")?,
            kv_count: int(a.kv_rows.count, "kv rows")?,
            mask: AttentionMask::from(a.mask) as i32,
            scale: a.scale,
        })
    }

    /// `attention_forward` and `attention_backward_dq`: a block per
    /// [`ATTENTION_ROWS`] query rows of each slab; K and V tiles in shared memory.
    pub fn query_pass(&self) -> LaunchConfig {
        LaunchConfig {
            grid: [blocks_of(self.q_count), self.slabs.max(1) as u32, 1],
            block: [ATTENTION_ROWS, 1, 1],
            shared_bytes: (2 * ATTENTION_TILE * self.head_dim as usize * 4) as u32,
        }
    }

    /// `attention_backward_dkdv`: a block per [`ATTENTION_ROWS`] keys of each
    /// slab; Q, dout tiles and their lse, delta in shared memory.
    pub fn key_pass(&self) -> LaunchConfig {
        LaunchConfig {
            grid: [blocks_of(self.kv_count), self.slabs.max(1) as u32, 1],
            block: [ATTENTION_ROWS, 1, 1],
            shared_bytes: (2 * ATTENTION_TILE * (self.head_dim as usize + 1) * 4) as u32,
        }
    }
}

fn blocks_of(rows: i32) -> u32 {
    (rows.max(1) as u32).div_ceil(ATTENTION_ROWS)
}

/// The AdamW kernel's per-step scalars (`AdamWStep` in `adamw.cu`),
/// computed as `cptrain::optim::AdamW::step` does: in f64, then rounded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
    /// `lr / (1 − β1ᵗ)`.
    pub step_size: f32,
    /// `sqrt(1 − β2ᵗ)`.
    pub bias_correction2_sqrt: f32,
    /// `1 − lr·weight_decay`, applied to decayed elements.
    pub decay_factor: f32,
}

impl AdamWStep {
    /// The scalars of step `step` (1-based) at learning rate `lr`.
    pub fn new(cfg: &cptrain::optim::OptimizerConfig, step: u64, lr: f64) -> Self {
        let t = step.min(i32::MAX as u64) as i32;
        AdamWStep {
            beta1: cfg.beta1 as f32,
            beta2: cfg.beta2 as f32,
            eps: cfg.eps as f32,
            step_size: (lr / (1.0 - cfg.beta1.powi(t))) as f32,
            bias_correction2_sqrt: (1.0 - cfg.beta2.powi(t)).sqrt() as f32,
            decay_factor: (1.0 - lr * cfg.weight_decay) as f32,
        }
    }
}

/// `v` as a kernel's `int`, or an error naming the kernel and the size.
pub fn to_i32(v: usize, kernel: &'static str, what: &str) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Shape {
        kernel,
        problem: format!("{what} = {v} exceeds the kernels' 32-bit sizes"),
    })
}

/// `v` as a kernel's `long long` element count.
pub fn to_i64(v: usize, kernel: &'static str, what: &str) -> Result<i64, CudaError> {
    i64::try_from(v).map_err(|_| CudaError::Shape {
        kernel,
        problem: format!("{what} = {v} exceeds the kernels' 64-bit counts"),
    })
}
