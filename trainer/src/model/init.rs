//! Deterministic GPT-2 initialisation.
//!
//! Weights and embeddings ~ N(0, 0.02); the residual projections
//! (`attn.c_proj.weight`, `mlp.c_proj.weight`) ~ N(0, 0.02/sqrt(2·n_layer));
//! biases 0; LayerNorm weight 1 and bias 0. Tensor `i` of the layout draws
//! from ChaCha8 stream `i` of `seed`, so each tensor's values depend only on
//! the seed, its index and its size. Normals come from the Box-Muller
//! transform in f64 (`ln`, `sqrt`, `cos` of libm: identical across platforms
//! up to the last bit of an f64, far below the f32 rounding of the result).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ModelConfig, ParamLayout};

/// Standard deviation of GPT-2's weights.
pub const INIT_STD: f64 = 0.02;

/// A fresh parameter buffer for `cfg`, initialised from `seed`.
pub fn init_params(cfg: &ModelConfig, seed: u64) -> Vec<f32> {
    let layout = ParamLayout::gpt2(cfg);
    let mut params = vec![0.0f32; layout.len()];
    let residual_std = INIT_STD / (2.0 * cfg.n_layer as f64).sqrt();
    for (i, spec) in layout.specs().iter().enumerate() {
        // Padding rows stay zero; the real rows draw what they would unpadded.
        let t = &mut params[spec.saved_range()];
        let name = spec.name.as_str();
        if name.ends_with(".bias") {
            t.fill(0.0);
        } else if name.contains(".ln_") {
            t.fill(1.0);
        } else {
            let std = if name.ends_with("c_proj.weight") {
                residual_std
            } else {
                INIT_STD
            };
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(i as u64);
            fill_normal(&mut rng, std, t);
        }
    }
    params
}

/// Fills `out` with N(0, std²) samples (Box-Muller, both outputs used).
fn fill_normal(rng: &mut ChaCha8Rng, std: f64, out: &mut [f32]) {
    for pair in out.chunks_mut(2) {
        let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let theta = std::f64::consts::TAU * u2;
        pair[0] = (r * theta.cos()) as f32;
        if let Some(second) = pair.get_mut(1) {
            *second = (r * theta.sin()) as f32;
        }
    }
}
