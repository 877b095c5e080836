//! Binds each configuration section to its prefix.

use appctx::ConfigSection;

use crate::data::{DataConfig, TrainConfig};
use crate::kernels::KernelsConfig;
use crate::metrics::MetricsConfig;
use crate::model::ModelConfig;
use crate::optim::OptimizerConfig;
use crate::parallel::ParallelConfig;

macro_rules! sections {
    ($($section:ty => $prefix:literal),* $(,)?) => {
        $(impl ConfigSection for $section {
            const PREFIX: &'static str = $prefix;
        })*
    };
}

sections! {
    ModelConfig => "model",
    DataConfig => "data",
    TrainConfig => "train",
    OptimizerConfig => "optimizer",
    ParallelConfig => "parallel",
    KernelsConfig => "kernels",
    MetricsConfig => "metrics",
}
