//! Using a trained model: generation one token at a time with a key/value
//! cache ([`Decoder`], [`generate`]), sampling ([`Sampler`]), what an
//! evaluation reports ([`EvalTotals`]), loading a checkpoint or a Hugging Face
//! directory ([`TrainedModel`]), and the samples printed during training
//! ([`TrainingSampler`]). The commands are `cptrain generate` and
//! `cptrain eval`.

mod decoder;
mod error;
mod evaluation;
mod generation;
mod sampling;
#[cfg(test)]
mod tests;
mod trained_model;
mod training_sample;
mod utf8_stream;

pub use decoder::Decoder;
pub use error::InferenceError;
pub use evaluation::{EvalTotals, byte_lengths};
pub use generation::{Continuation, Request, StopReason, generate};
pub use sampling::{Sampler, SamplingConfig, SamplingError, argmax, candidates};
pub use trained_model::{ModelSource, TrainedModel};
pub use training_sample::TrainingSampler;
pub use utf8_stream::Utf8Stream;
