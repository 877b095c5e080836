//! The optimizer: the [`Optimizer`] contract (AdamW built in) over the flat
//! parameter buffer, the learning-rate schedule and global-norm gradient
//! clipping.
//!
//! A step on one rank reads:
//!
//! ```
//! use cptrain::kernels::{CpuKernels, Kernels};
//! use cptrain::optim::{
//!     AdamW, DecayMask, LrSchedule, Optimizer, OptimizerConfig, ScheduleKind, clip_coefficient,
//! };
//!
//! let kernels = CpuKernels::default(); // the rank's device
//! let cfg = OptimizerConfig::default();
//! let mask = DecayMask::new(4, std::iter::once(0..2)); // elements 0 and 1 are 2-D weights
//! let mut adamw = AdamW::new(&cfg, mask, &kernels)?;
//! let schedule = LrSchedule::new(ScheduleKind::Cosine, &cfg, 100);
//! let mut params = kernels.upload(&[0.5; 4])?;
//! let mut grads = kernels.upload(&[3.0, 0.0, -4.0, 0.0])?;
//! // With several ranks, the caller all-reduces this sum before the sqrt.
//! let norm = kernels.sum_of_squares(grads.view()).sqrt();
//! assert_eq!(norm, 5.0);
//! kernels.scale(grads.view_mut(), clip_coefficient(norm, cfg.grad_clip));
//! adamw.step(&kernels, params.view_mut(), grads.view(), schedule.lr_at(0));
//! assert_eq!(adamw.state()?.step, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adamw;
mod clip;
mod config;
mod optimizer;
mod schedule;
mod state;

pub use adamw::{AdamW, AdamWFactory, AdamWUpdate, DecayMask};
pub use clip::{clip_coefficient, first_non_finite, scale, sum_of_squares};
pub use config::{OptimizerConfig, OptimizerConfigError};
pub use optimizer::{Optimizer, OptimizerFactory};
pub use schedule::{LearningRate, LrSchedule, ScheduleKind};
pub use state::{OptimStateError, OptimizerState};
