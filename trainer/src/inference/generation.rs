//! The generation loop: read the prompt into the cache, then choose, emit
//! and feed one token at a time until a stop rule applies.

use super::{Decoder, Sampler};
use crate::model::ModelError;

/// Why a continuation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model chose the end-of-text token (not part of the output).
    EndOfText,
    /// The sequence holds `model.seq_len` tokens: the positional table has
    /// no row for another.
    ContextFull,
    /// `max_new_tokens` were generated.
    MaxNewTokens,
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::EndOfText => "end-of-text",
            StopReason::ContextFull => "the context is full (model.seq_len tokens)",
            StopReason::MaxNewTokens => "--max-new-tokens reached",
        })
    }
}

/// A finished continuation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continuation {
    /// The new tokens (without an end-of-text that stopped them).
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop: StopReason,
}

/// What one generation reads and where it stops.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The tokens to continue; must be non-empty and shorter than
    /// `model.seq_len` (the caller puts a start token in an empty prompt).
    pub prompt: &'a [u32],
    /// Most new tokens.
    pub max_new_tokens: usize,
    /// The token that ends a text, if the tokenizer has one.
    pub end_of_text: Option<u32>,
}

/// Continues `request.prompt` (read with [`Decoder::prefill`]), calling
/// `on_token` with each new token as soon as it is chosen. The sequence
/// (prompt and new tokens) never exceeds `model.seq_len` tokens.
pub fn generate(
    decoder: &mut Decoder<'_>,
    sampler: &mut Sampler,
    request: Request<'_>,
    on_token: &mut dyn FnMut(u32),
) -> Result<Continuation, ModelError> {
    let mut logits = decoder.prefill(request.prompt)?;
    let mut tokens = Vec::new();
    loop {
        if tokens.len() == request.max_new_tokens {
            return Ok(Continuation {
                tokens,
                stop: StopReason::MaxNewTokens,
            });
        }
        let next = sampler.next(logits);
        if Some(next) == request.end_of_text {
            return Ok(Continuation {
                tokens,
                stop: StopReason::EndOfText,
            });
        }
        tokens.push(next);
        on_token(next);
        if decoder.len() + 1 == decoder.capacity() {
            return Ok(Continuation {
                tokens,
                stop: StopReason::ContextFull,
            });
        }
        logits = decoder.step(next)?;
    }
}
