//! The GPT-2 model: its shape, its parameter layout, forward and backward.

mod config;
mod params;

pub use config::{ModelConfig, ModelConfigError};
pub use params::{ParamLayout, ParamSpec};
