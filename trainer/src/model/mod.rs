//! The GPT-2 model: its shape, its parameter layout, forward and backward.

mod activations;
mod config;
mod error;
mod estimate;
mod gpt;
mod init;
mod operand;
mod params;
mod phase_flops;
mod profile;
mod shape;
mod tp_boundary;
mod tp_group;
mod views;
mod vocab_parallel;

#[cfg(test)]
pub(crate) mod tests;

pub use activations::Activations;
pub use config::{ModelConfig, ModelConfigError};
pub use error::ModelError;
pub use estimate::{flops_per_token, matmul_params};
pub use gpt::{Batch, Gpt};
pub use init::{INIT_STD, init_params};
pub use params::{ParamLayout, ParamSpec};
pub use phase_flops::PhaseFlops;
pub use profile::{Pass, Phase, PhaseEvent, Profile, Timer};
pub use shape::LocalShape;
pub use tp_group::TpGroup;
pub use views::{BlockParams, GptParams, Splits};
