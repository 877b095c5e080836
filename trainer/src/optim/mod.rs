//! The optimizer: AdamW over the flat parameter buffer, the learning-rate
//! schedule and global-norm gradient clipping.
//!
//! A step on one rank reads:
//!
//! ```
//! use cptrain::optim::{AdamW, DecayMask, LrSchedule, OptimizerConfig, clip_coefficient, scale, sum_of_squares};
//!
//! let cfg = OptimizerConfig::default();
//! let mask = DecayMask::new(4, std::iter::once(0..2)); // elements 0 and 1 are 2-D weights
//! let mut adamw = AdamW::new(&cfg, mask);
//! let schedule = LrSchedule::new(&cfg, 100);
//! let mut params = vec![0.5_f32; 4];
//! let mut grads = vec![3.0_f32, 0.0, -4.0, 0.0];
//! // With several ranks, the caller all-reduces this sum before the sqrt.
//! let norm = sum_of_squares(&grads).sqrt();
//! assert_eq!(norm, 5.0);
//! scale(&mut grads, clip_coefficient(norm, cfg.grad_clip));
//! adamw.step(&mut params, &grads, schedule.lr_at(0));
//! assert_eq!(adamw.state().step, 1);
//! ```

mod adamw;
mod clip;
mod config;
mod schedule;

pub use adamw::{AdamW, AdamWState, DecayMask, OptimStateError};
pub use clip::{clip_coefficient, first_non_finite, scale, sum_of_squares};
pub use config::{OptimizerConfig, OptimizerConfigError};
pub use schedule::{LrSchedule, ScheduleKind};
