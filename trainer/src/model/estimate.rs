//! Cost estimates for plans and MFU.

use super::ModelConfig;

/// Parameters that enter matrix products: all but `wpe` (a lookup).
pub fn matmul_params(cfg: &ModelConfig) -> f64 {
    cfg.param_count() - cfg.positions() as f64 * cfg.n_embd as f64
}

/// Training FLOPs per token (forward + backward) by the PaLM convention
/// `6·N + 12·n_layer·n_embd·seq_len`, N without `wpe`. The attention term
/// counts the full score matrix; causal kernels skip about half of it.
pub fn flops_per_token(cfg: &ModelConfig) -> f64 {
    6.0 * matmul_params(cfg) + 12.0 * cfg.n_layer as f64 * cfg.n_embd as f64 * cfg.seq_len as f64
}
