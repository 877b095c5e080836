//! The cached decoder against the training forward on the whole prefix,
//! generation's stop rules, seeded sampling, and evaluation's sums.

use std::sync::Arc;

use super::*;
use crate::attention::{Attention, LocalAttention};
use crate::kernels::{CpuKernels, Kernels, Threads};
use crate::model::{Activations, Batch, Gpt, ModelConfig, ModelError};

fn model() -> ModelConfig {
    ModelConfig {
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        vocab_size: 11,
        seq_len: 16,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    }
}

fn kernels() -> Arc<dyn Kernels> {
    Arc::new(CpuKernels::new(Threads::new(1).unwrap()))
}

/// Weights of scale 0.3 and LayerNorm gains near 1: logits that differ by
/// O(1) between tokens, so greedy choices are not near-ties (and, with
/// this seed, a greedy continuation that changes token often).
fn params(cfg: &ModelConfig) -> Vec<f32> {
    crate::model::tests::o1_params(Gpt::new(cfg.clone()).layout(), 7)
}

/// Logits `[len, V]` of the training forward over the whole `tokens`.
fn full_forward(
    cfg: &ModelConfig,
    kernels: &Arc<dyn Kernels>,
    p: &[f32],
    tokens: &[u32],
) -> Vec<f32> {
    let attention = LocalAttention::new(kernels.clone());
    let layout = attention.qkv_layout();
    let mut acts = Activations::new(&**kernels, cfg, 1, tokens.len(), layout).unwrap();
    let positions: Vec<usize> = (0..tokens.len()).collect();
    let batch = Batch {
        tokens,
        targets: tokens,
        positions: &positions,
    };
    Gpt::new(cfg.clone())
        .forward(&**kernels, &attention, p.into(), batch, &mut acts)
        .unwrap();
    acts.logits().unwrap().to_vec()
}

#[test]
fn cached_logits_equal_the_full_forward_at_every_position() {
    let (cfg, k) = (model(), kernels());
    let p = params(&cfg);
    let tokens: Vec<u32> = (0..cfg.seq_len as u32).map(|i| (i * 7 + 3) % 11).collect();
    let full = full_forward(&cfg, &k, &p, &tokens);
    let mut decoder = Decoder::new(&cfg, k.clone(), &p).unwrap();
    // Same f32 operations except the attention's summation order and exp:
    // agreement to 1e-4 of logits of size O(1).
    for (t, &token) in tokens.iter().enumerate() {
        let cached = decoder.step(token).unwrap();
        let reference = &full[t * cfg.vocab_size..][..cfg.vocab_size];
        for (v, (&a, &b)) in cached.iter().zip(reference).enumerate() {
            assert!((a - b).abs() < 1e-4, "position {t}, token {v}: {a} vs {b}");
        }
    }
    assert_eq!(decoder.len(), cfg.seq_len);

    // A prompt read in one pass leaves the same cache: the logits after it
    // and after every later step match the full forward too.
    let split = 10;
    let after_prompt = decoder.prefill(&tokens[..split]).unwrap().to_vec();
    let mut rows = vec![after_prompt];
    for &token in &tokens[split..] {
        rows.push(decoder.step(token).unwrap().to_vec());
    }
    for (i, row) in rows.iter().enumerate() {
        let t = split - 1 + i;
        let reference = &full[t * cfg.vocab_size..][..cfg.vocab_size];
        for (v, (&a, &b)) in row.iter().zip(reference).enumerate() {
            assert!(
                (a - b).abs() < 1e-4,
                "prefilled, position {t}, token {v}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn greedy_generation_is_the_argmax_of_a_full_forward_at_every_step() {
    let (cfg, k) = (model(), kernels());
    let p = params(&cfg);
    let prompt = [4, 1, 9];
    let mut decoder = Decoder::new(&cfg, k.clone(), &p).unwrap();
    let mut sampler = Sampler::new(
        SamplingConfig {
            temperature: 0.0,
            ..SamplingConfig::default()
        },
        0,
        0,
    );
    let request = Request {
        prompt: &prompt,
        max_new_tokens: 100,
        end_of_text: None,
    };
    let mut streamed = Vec::new();
    let out = generate(&mut decoder, &mut sampler, request, &mut |t| {
        streamed.push(t)
    })
    .unwrap();
    // The sequence fills the context exactly: 3 + 13 = seq_len.
    assert_eq!(out.stop, StopReason::ContextFull);
    assert_eq!(out.tokens.len(), cfg.seq_len - prompt.len());
    assert_eq!(streamed, out.tokens);
    let mut sequence = prompt.to_vec();
    for (step, &token) in out.tokens.iter().enumerate() {
        let logits = full_forward(&cfg, &k, &p, &sequence);
        let last = &logits[(sequence.len() - 1) * cfg.vocab_size..];
        assert_eq!(token, argmax(last), "step {step}");
        sequence.push(token);
    }
    // Not a constant sequence: the comparison above tested real choices.
    assert!(
        out.tokens.iter().any(|&t| t != out.tokens[0]),
        "{:?}",
        out.tokens
    );

    // The same token as end-of-text stops there, and is not emitted.
    let eot = out.tokens[2];
    let first = out.tokens.iter().position(|&t| t == eot).unwrap();
    let request = Request {
        end_of_text: Some(eot),
        ..request
    };
    let stopped = generate(&mut decoder, &mut sampler, request, &mut |_| {}).unwrap();
    assert_eq!(stopped.stop, StopReason::EndOfText);
    assert_eq!(stopped.tokens, out.tokens[..first]);
    let request = Request {
        max_new_tokens: 2,
        end_of_text: None,
        ..request
    };
    let short = generate(&mut decoder, &mut sampler, request, &mut |_| {}).unwrap();
    assert_eq!(
        (short.stop, &short.tokens[..]),
        (StopReason::MaxNewTokens, &out.tokens[..2])
    );
}

#[test]
fn seeded_sampling_is_reproducible_and_streams_differ() {
    let (cfg, k) = (model(), kernels());
    let p = params(&cfg);
    let mut decoder = Decoder::new(&cfg, k.clone(), &p).unwrap();
    let mut sample = |seed, stream| {
        let mut sampler = Sampler::new(SamplingConfig::default(), seed, stream);
        let request = Request {
            prompt: &[2],
            max_new_tokens: 12,
            end_of_text: None,
        };
        generate(&mut decoder, &mut sampler, request, &mut |_| {})
            .unwrap()
            .tokens
    };
    let first = sample(42, 0);
    assert_eq!(first.len(), 12);
    assert_eq!(sample(42, 0), first);
    assert_ne!(sample(42, 1), first);
    assert_ne!(sample(43, 0), first);
}

#[test]
fn tokens_outside_the_vocabulary_or_the_context_are_refused() {
    let (cfg, k) = (model(), kernels());
    let p = params(&cfg);
    let mut decoder = Decoder::new(&cfg, k.clone(), &p).unwrap();
    assert!(matches!(
        decoder.step(11),
        Err(ModelError::Token { token: 11, .. })
    ));
    for _ in 0..cfg.seq_len {
        decoder.step(0).unwrap();
    }
    assert!(matches!(
        decoder.step(0),
        Err(ModelError::Position { position: 16, .. })
    ));
    assert!(matches!(
        Decoder::new(&cfg, k.clone(), &p[1..]),
        Err(ModelError::Shape { what: "params", .. })
    ));
}

/// `model.vocab_padding`: the padded model computes the unpadded one's
/// logits for the real ids and never offers a padding id. Its padding rows
/// are set to 50 here (they are zero in real runs) so that a padding id
/// that leaked into the softmax or the sampler would dominate.
#[test]
fn padding_ids_are_never_predicted_or_sampled() {
    let (plain, k) = (model(), kernels());
    let padded = ModelConfig {
        vocab_padding: 8,
        ..model()
    };
    let (v, width, c) = (plain.vocab_size, padded.padded_vocab(), plain.n_embd);
    assert_eq!(width, 16);
    let p = params(&plain);
    let mut q = p[..v * c].to_vec();
    q.extend(std::iter::repeat_n(50.0, (width - v) * c));
    q.extend_from_slice(&p[v * c..]);

    let tokens = [4, 1, 9, 3, 3, 0, 10];
    let (a, b) = (
        full_forward(&plain, &k, &p, &tokens),
        full_forward(&padded, &k, &q, &tokens),
    );
    for (row, (a, b)) in a.chunks_exact(v).zip(b.chunks_exact(width)).enumerate() {
        // The same dot products; 1e-6 allows the matrix kernel another
        // blocking of the wider product.
        for (x, y) in a.iter().zip(&b[..v]) {
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "row {row}");
        }
        assert!(b[v..].iter().all(|&x| x == f32::NEG_INFINITY), "row {row}");
    }
    let mut decoder = Decoder::new(&padded, k.clone(), &q).unwrap();
    assert_eq!(decoder.prefill(&tokens).unwrap().len(), v);
    assert_eq!(decoder.step(2).unwrap().len(), v);

    let mut emitted = Vec::new();
    for seed in 0..20 {
        let mut sampler = Sampler::new(
            SamplingConfig {
                temperature: 2.0,
                ..SamplingConfig::default()
            },
            seed,
            0,
        );
        let request = Request {
            prompt: &[2],
            max_new_tokens: 15,
            end_of_text: None,
        };
        let out = generate(&mut decoder, &mut sampler, request, &mut |_| {}).unwrap();
        emitted.extend(out.tokens);
    }
    assert_eq!(emitted.len(), 20 * 15);
    assert!(emitted.iter().all(|&t| (t as usize) < v), "{emitted:?}");
    // A hot sampler over 300 draws reaches many real ids: the test saw choices.
    let distinct: std::collections::BTreeSet<u32> = emitted.into_iter().collect();
    assert!(distinct.len() >= 6, "{distinct:?}");
}
