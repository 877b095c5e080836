//! One training micro-step (forward + backward) of the GPT-2 model on CPU.
//!
//! `cargo bench -p cptrain --bench step`. Tokens/s is printed by divan
//! (items = tokens); GFLOP/s = tokens/s × `flops_per_token` (the 6N + 12·L·d·T
//! convention), printed once per case before timing.

use std::sync::Arc;

use cptrain::attention::{Attention, LocalAttention};
use cptrain::kernels::{CpuKernels, Kernels, Threads};
use cptrain::model::{Activations, Batch, Gpt, ModelConfig, flops_per_token, init_params};
use divan::{Bencher, counter::ItemsCount};

fn main() {
    divan::main();
}

/// (name, n_layer, n_embd, n_head, seq_len, batch, vocab)
const CASES: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("tiny", 2, 128, 4, 256, 8, 256),
    ("small", 4, 256, 4, 512, 4, 256),
];

#[divan::bench(args = ["tiny/1t", "tiny/2t", "small/1t", "small/2t"], sample_count = 10, sample_size = 1)]
fn forward_backward(bencher: Bencher, case: &str) {
    let (name, threads) = case.split_once('/').unwrap();
    let threads: usize = threads.trim_end_matches('t').parse().unwrap();
    let &(_, n_layer, n_embd, n_head, seq_len, batch, vocab_size) =
        CASES.iter().find(|c| c.0 == name).unwrap();
    let cfg = ModelConfig {
        n_layer,
        n_head,
        n_embd,
        vocab_size,
        seq_len,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    };
    let gpt = Gpt::new(cfg.clone());
    let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::new(Threads::new(threads).unwrap()));
    let attn = LocalAttention::new(kernels.clone());
    let params = kernels.upload(&init_params(&cfg, 1)).unwrap();
    let mut grads = kernels.alloc(params.len()).unwrap();
    let layout = attn.qkv_layout();
    let mut acts = Activations::new(&*kernels, &cfg, batch, seq_len, layout).unwrap();
    let tokens: Vec<u32> = (0..batch * seq_len)
        .map(|i| (i * 31 % vocab_size) as u32)
        .collect();
    let targets: Vec<u32> = tokens.iter().map(|t| (t + 1) % vocab_size as u32).collect();
    let positions: Vec<usize> = (0..seq_len).collect();
    let b = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };
    let n_tokens = batch * seq_len;
    eprintln!(
        "{case}: {:.3} GFLOP per step",
        flops_per_token(&cfg) * n_tokens as f64 / 1e9
    );
    bencher.counter(ItemsCount::new(n_tokens)).bench_local(|| {
        gpt.forward(&*kernels, &attn, params.view(), b, &mut acts)
            .unwrap();
        gpt.backward(
            &*kernels,
            &attn,
            params.view(),
            b,
            1.0 / n_tokens as f32,
            &mut acts,
            grads.view_mut(),
        )
        .unwrap();
    });
}
