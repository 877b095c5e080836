use serde::{Deserialize, Serialize};

/// The `[optimizer]` section: the optimizer (AdamW's hyperparameters), its
/// learning-rate schedule and clipping.
///
/// Defaults (GPT-2 / nanoGPT values): `kind = "adamw"`, `schedule = "cosine"`, `lr = 6e-4`,
/// `min_lr = 6e-5`, `warmup_steps = 10`, `decay_fraction = 0.2`, `beta1 = 0.9`, `beta2 = 0.95`, `eps = 1e-8`,
/// `weight_decay = 0.1`, `grad_clip = 1.0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// The optimizer, by component name: the built-in `adamw`, or a
    /// plugin's [`OptimizerFactory`](super::OptimizerFactory) (which reads
    /// its own hyperparameters; clipping and the schedule apply to any).
    pub kind: String,
    /// The learning-rate schedule, by component name: the built-in `cosine`,
    /// `constant`, `linear` or `wsd` (formulas on
    /// [`LrSchedule`](super::LrSchedule)), or a plugin's
    /// [`LearningRate`](super::LearningRate).
    pub schedule: String,
    /// Peak learning rate, reached at the end of warmup.
    pub lr: f64,
    /// Learning rate at the end of the decay (`cosine`, `linear`, `wsd`).
    pub min_lr: f64,
    /// Steps of linear warmup: step `s < warmup_steps` uses `lr·(s+1)/warmup_steps`.
    pub warmup_steps: u64,
    /// `wsd`: the share of `train.steps` at the end of the run over which
    /// the learning rate decays linearly to `min_lr`.
    pub decay_fraction: f64,
    /// Decay rate of the first moment.
    pub beta1: f64,
    /// Decay rate of the second moment.
    pub beta2: f64,
    /// Added to the denominator for numerical stability.
    pub eps: f64,
    /// Decoupled weight decay, applied to 2-D weights and embeddings only.
    pub weight_decay: f64,
    /// Maximum global L2 norm of the gradient; `0` disables clipping.
    pub grad_clip: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: "adamw".into(),
            schedule: "cosine".into(),
            lr: 6e-4,
            min_lr: 6e-5,
            warmup_steps: 10,
            decay_fraction: 0.2,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_clip: 1.0,
        }
    }
}

/// An `[optimizer]` value outside its valid range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("optimizer.{key} = {value} is invalid: {expected}")]
pub struct OptimizerConfigError {
    /// The offending key under `optimizer`.
    pub key: &'static str,
    /// The value found.
    pub value: f64,
    /// What the key accepts.
    pub expected: &'static str,
}

impl OptimizerConfig {
    /// Checks every value's range; the error names the key and the accepted range.
    pub fn validate(&self) -> Result<(), OptimizerConfigError> {
        let checks: [(&'static str, f64, bool, &'static str); 8] = [
            ("lr", self.lr, self.lr > 0.0, "expected a finite number > 0"),
            (
                "min_lr",
                self.min_lr,
                (0.0..=self.lr).contains(&self.min_lr),
                "expected 0 <= min_lr <= optimizer.lr",
            ),
            (
                "decay_fraction",
                self.decay_fraction,
                self.decay_fraction > 0.0 && self.decay_fraction <= 1.0,
                "expected 0 < decay_fraction <= 1 (the share of train.steps that decays)",
            ),
            (
                "beta1",
                self.beta1,
                (0.0..1.0).contains(&self.beta1),
                "expected 0 <= beta1 < 1",
            ),
            (
                "beta2",
                self.beta2,
                (0.0..1.0).contains(&self.beta2),
                "expected 0 <= beta2 < 1",
            ),
            (
                "eps",
                self.eps,
                self.eps > 0.0,
                "expected a finite number > 0",
            ),
            (
                "weight_decay",
                self.weight_decay,
                self.weight_decay >= 0.0,
                "expected a finite number >= 0",
            ),
            (
                "grad_clip",
                self.grad_clip,
                self.grad_clip >= 0.0,
                "expected a finite number >= 0 (0 disables clipping)",
            ),
        ];
        for (key, value, ok, expected) in checks {
            if !ok || !value.is_finite() {
                return Err(OptimizerConfigError {
                    key,
                    value,
                    expected,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(OptimizerConfig::default().validate(), Ok(()));
        let cases: [(OptimizerConfig, &str); 6] = [
            (
                OptimizerConfig {
                    lr: 0.0,
                    ..Default::default()
                },
                "optimizer.lr = 0",
            ),
            (
                OptimizerConfig {
                    min_lr: 1.0,
                    ..Default::default()
                },
                "optimizer.min_lr = 1",
            ),
            (
                OptimizerConfig {
                    decay_fraction: 0.0,
                    ..Default::default()
                },
                "optimizer.decay_fraction = 0",
            ),
            (
                OptimizerConfig {
                    beta2: 1.0,
                    ..Default::default()
                },
                "optimizer.beta2 = 1",
            ),
            (
                OptimizerConfig {
                    eps: f64::NAN,
                    ..Default::default()
                },
                "optimizer.eps = NaN",
            ),
            (
                OptimizerConfig {
                    grad_clip: -1.0,
                    ..Default::default()
                },
                "optimizer.grad_clip = -1",
            ),
        ];
        for (cfg, message) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.starts_with(message), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_json::from_str::<OptimizerConfig>(r#"{"lr": 1e-3, "betas": 0.9}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `betas`"), "{err}");
        let partial: OptimizerConfig = serde_json::from_str(r#"{"lr": 1e-3}"#).unwrap();
        assert_eq!(partial.beta2, 0.95);
    }
}
