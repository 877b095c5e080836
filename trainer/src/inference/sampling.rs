//! Choosing the next token from the logits: greedy, or a seeded draw after
//! temperature, top-k and top-p (nucleus) filtering.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How the next token is chosen (the `--temperature`, `--top-k`, `--top-p`
/// flags of `cptrain generate`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingConfig {
    /// Divides the logits; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (0: all of them).
    pub top_k: usize,
    /// Keep the most likely tokens until their probability reaches `p`
    /// (1: all of them).
    pub top_p: f32,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

/// A sampling setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SamplingError {
    /// Negative or not a number.
    #[error("--temperature = {0} must be a finite number ≥ 0 (0 = greedy)")]
    Temperature(f32),
    /// Outside (0, 1].
    #[error("--top-p = {0} must be in (0, 1] (1 = off)")]
    TopP(f32),
}

impl SamplingConfig {
    /// Checks the ranges, naming the flag at fault.
    pub fn validate(&self) -> Result<(), SamplingError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        Ok(())
    }

    /// Whether the choice is the argmax (no randomness).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// The index of the largest logit (the lowest index among equals).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The tokens a draw chooses among and their probabilities (summing to 1),
/// most likely first (equal logits: lower id first): the softmax of
/// `logits / temperature`, cut to the `top_k` most likely, then to the
/// shortest prefix whose probability reaches `top_p`, renormalized.
/// `cfg.temperature` must be above 0.
pub fn candidates(logits: &[f32], cfg: &SamplingConfig) -> Vec<(u32, f64)> {
    let t = f64::from(cfg.temperature);
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    ids.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if cfg.top_k > 0 {
        ids.truncate(cfg.top_k);
    }
    let top = f64::from(logits[ids[0] as usize]);
    let mut kept: Vec<(u32, f64)> = ids
        .into_iter()
        .map(|id| (id, ((f64::from(logits[id as usize]) - top) / t).exp()))
        .collect();
    normalize(&mut kept);
    if cfg.top_p < 1.0 {
        let mut mass = 0.0;
        let keep = kept
            .iter()
            .position(|&(_, p)| {
                mass += p;
                mass >= f64::from(cfg.top_p)
            })
            .map_or(kept.len(), |i| i + 1);
        kept.truncate(keep);
        normalize(&mut kept);
    }
    kept
}

fn normalize(weights: &mut [(u32, f64)]) {
    let total: f64 = weights.iter().map(|&(_, w)| w).sum();
    weights.iter_mut().for_each(|(_, w)| *w /= total);
}

/// Chooses tokens with its own seeded random stream.
#[derive(Debug)]
pub struct Sampler {
    cfg: SamplingConfig,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler for `cfg` whose draws come from stream `stream` of `seed`
    /// (sample `i` of `--num-samples` uses stream `i`, so each sample
    /// depends only on the seed and its index).
    pub fn new(cfg: SamplingConfig, seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Sampler { cfg, rng }
    }

    /// The next token given the logits `[V]`.
    pub fn next(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.is_greedy() {
            return argmax(logits);
        }
        let kept = candidates(logits, &self.cfg);
        let mut u = self.rng.random::<f64>();
        for &(id, p) in &kept {
            if u < p {
                return id;
            }
            u -= p;
        }
        kept[kept.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_k: usize, top_p: f32) -> SamplingConfig {
        SamplingConfig {
            temperature,
            top_k,
            top_p,
        }
    }

    fn close(got: &[(u32, f64)], want: &[(u32, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (&(gi, gp), &(wi, wp)) in got.iter().zip(want) {
            assert_eq!(gi, wi, "{got:?} vs {want:?}");
            assert!((gp - wp).abs() < 1e-7, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn top_k_keeps_the_k_most_likely_renormalized() {
        // softmax over {4, 3} alone: e/(e+1) and 1/(e+1).
        let e = std::f64::consts::E;
        let got = candidates(&[1.0, 4.0, 3.0, 2.0], &cfg(1.0, 2, 1.0));
        close(&got, &[(1, e / (e + 1.0)), (2, 1.0 / (e + 1.0))]);
        // Temperature 2 halves the logit gaps: e^0.5 instead of e.
        let got = candidates(&[1.0, 4.0, 3.0, 2.0], &cfg(2.0, 2, 1.0));
        let r = e.sqrt();
        close(&got, &[(1, r / (r + 1.0)), (2, 1.0 / (r + 1.0))]);
    }

    #[test]
    fn top_p_keeps_the_shortest_prefix_reaching_p() {
        // Probabilities 0.1, 0.2, 0.3, 0.4: 0.4 < 0.5 ≤ 0.4 + 0.3.
        let logits = [0.1f32, 0.2, 0.3, 0.4].map(f32::ln);
        let got = candidates(&logits, &cfg(1.0, 0, 0.5));
        close(&got, &[(3, 4.0 / 7.0), (2, 3.0 / 7.0)]);
        // p below the top probability keeps the top token alone.
        close(&candidates(&logits, &cfg(1.0, 0, 0.3)), &[(3, 1.0)]);
        // top-k first (0.4, 0.3, 0.2 → 4/9, 3/9, 2/9), then top-p 0.6.
        let got = candidates(&logits, &cfg(1.0, 3, 0.6));
        close(&got, &[(3, 4.0 / 7.0), (2, 3.0 / 7.0)]);
        // Off: everything, most likely first.
        let all = candidates(&logits, &cfg(1.0, 0, 1.0));
        let want = [(3, 0.4), (2, 0.3), (1, 0.2), (0, 0.1)];
        assert_eq!(all.len(), 4);
        for (&(gi, gp), (wi, wp)) in all.iter().zip(want) {
            assert_eq!(gi, wi);
            assert!((gp - wp).abs() < 1e-7, "{all:?}");
        }
    }

    #[test]
    fn greedy_takes_the_first_largest_logit() {
        assert_eq!(argmax(&[0.5, 2.0, -1.0, 2.0]), 1);
        let mut sampler = Sampler::new(cfg(0.0, 0, 1.0), 1, 0);
        assert_eq!(sampler.next(&[0.5, 2.0, 3.0, 2.0]), 2);
    }

    #[test]
    fn a_seed_and_stream_give_the_same_draws_and_others_differ() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 7) % 11) as f32 * 0.3).collect();
        let draw = |seed, stream| {
            let mut s = Sampler::new(cfg(1.0, 0, 1.0), seed, stream);
            (0..40).map(|_| s.next(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, 0), draw(7, 0));
        assert_ne!(draw(7, 0), draw(7, 1));
        assert_ne!(draw(7, 0), draw(8, 0));
        // Draws stay among the top-k.
        let mut s = Sampler::new(cfg(1.0, 3, 1.0), 7, 0);
        let allowed = candidates(&logits, &cfg(1.0, 3, 1.0));
        for _ in 0..100 {
            let id = s.next(&logits);
            assert!(allowed.iter().any(|&(a, _)| a == id), "{id}");
        }
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let err = cfg(-1.0, 0, 1.0).validate().unwrap_err().to_string();
        assert!(err.contains("--temperature"), "{err}");
        for p in [0.0, 1.5, f32::NAN] {
            let err = cfg(1.0, 0, p).validate().unwrap_err().to_string();
            assert!(err.contains("--top-p"), "{err}");
        }
        assert_eq!(cfg(0.0, 5, 0.9).validate(), Ok(()));
    }
}
