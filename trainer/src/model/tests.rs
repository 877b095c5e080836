//! Whole-model tests: gradients against finite differences, loss at init,
//! position lookups, input errors, initialisation.

use std::sync::Arc;

use super::operand::ProductOperand;
use super::*;
use crate::attention::{LocalAttention, QkvLayout};
use crate::kernels::test_support::uniform;
use crate::kernels::{CpuKernels, IGNORE_TARGET, Kernels, LossSum, Precision, Threads};

fn cfg(
    n_layer: usize,
    n_head: usize,
    n_embd: usize,
    vocab_size: usize,
    seq_len: usize,
) -> ModelConfig {
    ModelConfig {
        n_layer,
        n_head,
        n_embd,
        vocab_size,
        seq_len,
        init: None,
        n_positions: None,
        vocab_padding: 1,
    }
}

struct Setup {
    gpt: Gpt,
    kernels: Arc<dyn Kernels>,
    attn: LocalAttention,
}

fn setup(cfg: ModelConfig, threads: usize) -> Setup {
    let kernels: Arc<dyn Kernels> = Arc::new(CpuKernels::new(Threads::new(threads).unwrap()));
    Setup {
        gpt: Gpt::new(cfg),
        attn: LocalAttention::new(kernels.clone()),
        kernels,
    }
}

impl Setup {
    fn loss(
        &self,
        params: &[f32],
        batch: Batch<'_>,
        acts: &mut Activations,
    ) -> Result<LossSum, ModelError> {
        self.gpt
            .forward(&*self.kernels, &self.attn, params.into(), batch, acts)
    }

    fn grads(&self, params: &[f32], batch: Batch<'_>, acts: &mut Activations, grads: &mut [f32]) {
        self.loss(params, batch, acts).unwrap();
        self.gpt
            .backward(
                &*self.kernels,
                &self.attn,
                params.into(),
                batch,
                1.0,
                acts,
                grads.into(),
            )
            .unwrap();
    }
}

/// Parameters with O(1) gradients: uniform weights of scale 0.3, LayerNorm
/// weights near 1 (GPT-2's 0.02 would make most gradients tiny), drawn
/// from `seed`.
pub(crate) fn o1_params(layout: &ParamLayout, seed: u64) -> Vec<f32> {
    let mut p: Vec<f32> = uniform(seed, layout.len())
        .iter()
        .map(|x| 0.3 * x)
        .collect();
    for spec in layout.specs() {
        if spec.name.contains(".ln_") && spec.name.ends_with("weight") {
            p[spec.range()].iter_mut().for_each(|x| *x += 1.0);
        }
    }
    p
}

fn test_params(gpt: &Gpt) -> Vec<f32> {
    o1_params(gpt.layout(), 99)
}

#[test]
fn gradients_of_every_tensor_match_central_differences() {
    // B=2, len=5 with non-contiguous global positions (as a CP rank holds
    // them) and two ignored targets; odd head_dim 3.
    let s = setup(cfg(2, 2, 6, 11, 12), 1);
    let tokens = [1, 5, 10, 0, 3, 7, 7, 2, 9, 4];
    let targets = [5, 10, IGNORE_TARGET, 3, 7, 2, 9, 4, IGNORE_TARGET, 1];
    let positions = [0, 1, 2, 9, 10];
    let batch = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };
    for layout in [QkvLayout::Packed, QkvLayout::HeadMajor] {
        check_gradients(
            &s,
            batch,
            Activations::new(&CpuKernels::default(), s.gpt.config(), 2, 5, layout).unwrap(),
        );
    }
}

fn check_gradients(s: &Setup, batch: Batch<'_>, mut acts: Activations) {
    let mut params = test_params(&s.gpt);
    let mut grads = vec![0.0; params.len()];
    s.grads(&params, batch, &mut acts, &mut grads);
    // Central differences of the f32 model, loss summed in f64. With h = 1e-2
    // the truncation error is ~h²·|f'''| ≈ 1e-4 and the rounding error
    // ~(8 targets · 1e-7 relative · loss 3)/h ≈ 3e-4; a wrong formula is off
    // by a sizeable fraction of the gradient. Tolerance: 2e-3 + 1e-2·|g|.
    let h = 1e-2f32;
    let mut checked = 0;
    for spec in s.gpt.layout().specs() {
        let range = spec.range();
        let picks = [range.start, range.start + range.len() / 2, range.end - 1];
        for &i in &picks {
            let orig = params[i];
            params[i] = orig + h;
            let up = s.loss(&params, batch, &mut acts).unwrap().sum;
            params[i] = orig - h;
            let down = s.loss(&params, batch, &mut acts).unwrap().sum;
            params[i] = orig;
            let fd = (up - down) / (2.0 * f64::from(h));
            let g = f64::from(grads[i]);
            let wpe_unused = spec.name == "transformer.wpe.weight" && (i - range.start) / 6 > 10;
            assert!(
                (fd - g).abs() <= 2e-3 + 1e-2 * g.abs(),
                "{} [{}]: backward {g}, finite difference {fd}",
                spec.name,
                i - range.start
            );
            assert!(!wpe_unused || g == 0.0);
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * s.gpt.layout().specs().len());
}

/// The packed path (attention reading the qkv projection in place) and the
/// head-major one (split, attention, merge) run the same arithmetic in the
/// same order, so loss and gradients agree bit for bit.
#[test]
fn both_qkv_layouts_give_identical_results() {
    let model = cfg(2, 4, 32, 40, 130);
    let s = setup(model.clone(), 2);
    let tokens: Vec<u32> = (0..2 * 130).map(|i| (i * 11 % 40) as u32).collect();
    let targets: Vec<u32> = tokens.iter().map(|t| (t + 3) % 40).collect();
    let positions: Vec<usize> = (0..130).collect();
    let batch = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };
    let params = test_params(&s.gpt);
    let run = |layout| {
        let mut acts = Activations::new(&CpuKernels::default(), &model, 2, 130, layout).unwrap();
        let mut grads = vec![0.0; params.len()];
        let loss = s.loss(&params, batch, &mut acts).unwrap().sum;
        s.grads(&params, batch, &mut acts, &mut grads);
        (loss, grads)
    };
    assert_eq!(run(QkvLayout::Packed), run(QkvLayout::HeadMajor));
}

/// With bf16 products, keeping the product operands (LayerNorm and GELU
/// outputs) in bf16 changes nothing: the products round them the same way,
/// so loss and gradients agree bit for bit with f32 copies, in both qkv
/// layouts. 13 rows of 15 make the LayerNorm outputs an odd count (a
/// half-used last word).
#[test]
fn bf16_operands_kept_in_bf16_give_identical_results() {
    let kernels = match CpuKernels::with_precision(Threads::new(2).unwrap(), Precision::Bf16) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let model = cfg(2, 3, 15, 40, 13);
    let s = Setup {
        gpt: Gpt::new(model.clone()),
        attn: LocalAttention::new(kernels.clone()),
        kernels: kernels.clone(),
    };
    let tokens: Vec<u32> = (0..13).map(|i| (i * 11 % 40) as u32).collect();
    let targets: Vec<u32> = tokens.iter().map(|t| (t + 3) % 40).collect();
    let positions: Vec<usize> = (0..13).collect();
    let batch = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };
    let params = test_params(&s.gpt);
    let shape = LocalShape::full(&model);
    for layout in [QkvLayout::Packed, QkvLayout::HeadMajor] {
        let run = |operands| {
            let mut acts =
                Activations::with_operands(&*kernels, &shape, 1, 13, layout, operands).unwrap();
            let mut grads = vec![0.0; params.len()];
            s.grads(&params, batch, &mut acts, &mut grads);
            let loss = s.loss(&params, batch, &mut acts).unwrap().sum;
            (loss, grads)
        };
        let (f32_copies, bf16_copies) = (run(Precision::F32), run(Precision::Bf16));
        assert!(matches!(
            Activations::with_shape(&*kernels, &shape, 1, 13, layout)
                .unwrap()
                .blocks[0]
                .ln1,
            ProductOperand::Bf16(_)
        ));
        assert_eq!(bf16_copies, f32_copies, "{layout:?}");
        // And the products are bf16 ones: f32 kernels give another loss.
        let f32_loss = setup(model.clone(), 1)
            .loss(
                &params,
                batch,
                &mut Activations::new(&CpuKernels::default(), &model, 1, 13, layout).unwrap(),
            )
            .unwrap()
            .sum;
        assert_ne!(f32_loss, f32_copies.0);
    }
}

#[test]
fn gradients_accumulate_and_thread_count_does_not_change_results() {
    let model = cfg(2, 4, 16, 32, 64);
    let (tokens, positions): (Vec<u32>, Vec<usize>) = (
        (0..3 * 40).map(|i| (i * 7 % 32) as u32).collect(),
        (0..40).collect(),
    );
    let targets: Vec<u32> = tokens.iter().map(|t| (t + 1) % 32).collect();
    let batch = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };
    let mut results = Vec::new();
    for threads in [1, 2] {
        let s = setup(model.clone(), threads);
        let params = init_params(&model, 5);
        let mut acts =
            Activations::new(&CpuKernels::default(), &model, 3, 40, QkvLayout::Packed).unwrap();
        let mut once = vec![0.0; params.len()];
        s.grads(&params, batch, &mut acts, &mut once);
        let mut twice = vec![0.0; params.len()];
        s.grads(&params, batch, &mut acts, &mut twice);
        s.grads(&params, batch, &mut acts, &mut twice);
        assert!(
            once.iter()
                .zip(&twice)
                .all(|(a, b)| (2.0 * a - b).abs() <= 1e-6 * (1.0 + b.abs()))
        );
        results.push((s.loss(&params, batch, &mut acts).unwrap(), once));
    }
    assert!((results[0].0.sum - results[1].0.sum).abs() < 1e-4);
    let max_diff = results[0]
        .1
        .iter()
        .zip(&results[1].1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(max_diff < 1e-5, "1 vs 2 threads differ by {max_diff}");
}

#[test]
fn an_untrained_model_predicts_nearly_uniformly() {
    for vocab in [256, 1000] {
        let model = cfg(2, 2, 32, vocab, 16);
        let s = setup(model.clone(), 1);
        let tokens: Vec<u32> = (0..32).map(|i| (i * 37 % vocab) as u32).collect();
        // Targets differ from the inputs: with tied embeddings an input token
        // is itself favoured (its embedding survives to the output).
        let targets: Vec<u32> = tokens.iter().map(|&t| (t + 1) % vocab as u32).collect();
        let positions: Vec<usize> = (0..16).collect();
        let batch = Batch {
            tokens: &tokens,
            targets: &targets,
            positions: &positions,
        };
        let mut acts =
            Activations::new(&CpuKernels::default(), &model, 2, 16, QkvLayout::Packed).unwrap();
        let loss = s.loss(&init_params(&model, 1), batch, &mut acts).unwrap();
        assert_eq!(loss.count, 32);
        // ln_f's output has unit scale, so logits have std ≈ 0.02·√C ≈ 0.11:
        // the loss is ln V + O(σ²) ± σ/√32, well inside 0.05.
        assert!(
            (loss.mean() - (vocab as f64).ln()).abs() < 0.05,
            "{}",
            loss.mean()
        );
    }
}

#[test]
fn position_embeddings_are_looked_up_by_the_given_positions() {
    let model = cfg(1, 2, 8, 16, 10);
    let s = setup(model.clone(), 1);
    let mut params = test_params(&s.gpt);
    let (tokens, targets) = ([3u32, 4, 5], [4u32, 5, 6]);
    let positions = [2, 7, 8];
    let batch = Batch {
        tokens: &tokens,
        targets: &targets,
        positions: &positions,
    };
    let mut acts =
        Activations::new(&CpuKernels::default(), &model, 1, 3, QkvLayout::Packed).unwrap();
    let base = s.loss(&params, batch, &mut acts).unwrap().sum;
    let wpe = s
        .gpt
        .layout()
        .get("transformer.wpe.weight")
        .unwrap()
        .range();
    let c = model.n_embd;
    // Changing an unused row changes nothing; changing a used one does.
    params[wpe.start + 3 * c] += 1.0;
    assert_eq!(s.loss(&params, batch, &mut acts).unwrap().sum, base);
    params[wpe.start + 7 * c] += 1.0;
    assert_ne!(s.loss(&params, batch, &mut acts).unwrap().sum, base);
    let mut grads = vec![0.0; params.len()];
    s.grads(&params, batch, &mut acts, &mut grads);
    for row in 0..10 {
        let used = positions.contains(&row);
        let g = &grads[wpe.start + row * c..][..c];
        assert_eq!(g.iter().any(|&x| x != 0.0), used, "wpe row {row}");
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let model = cfg(1, 1, 4, 8, 4);
    let s = setup(model.clone(), 1);
    let params = init_params(&model, 0);
    let mut acts =
        Activations::new(&CpuKernels::default(), &model, 1, 2, QkvLayout::Packed).unwrap();
    let pos = [0, 1];
    let run = |tokens: &[u32], targets: &[u32], positions: &[usize], acts: &mut Activations| {
        s.loss(
            &params,
            Batch {
                tokens,
                targets,
                positions,
            },
            acts,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(run(&[1, 8], &[0, 0], &pos, &mut acts).contains("token 8 at position 1"));
    assert!(run(&[1, 2], &[9, 0], &pos, &mut acts).contains("target 9"));
    assert!(run(&[1, 2], &[0, 0], &[0, 4], &mut acts).contains("position 4"));
    assert!(
        run(&[1, 2, 3], &[0, 0], &pos, &mut acts).contains("`tokens` has 3 elements, expected 2")
    );
}

#[test]
fn init_is_deterministic_and_follows_the_gpt2_scheme() {
    let model = cfg(4, 4, 64, 100, 32);
    let p = init_params(&model, 42);
    assert_eq!(p, init_params(&model, 42));
    assert_ne!(p, init_params(&model, 43));
    let layout = ParamLayout::gpt2(&model);
    let stats = |name: &str| {
        let t = &p[layout.get(name).unwrap().range()];
        let mean = t.iter().map(|&x| f64::from(x)).sum::<f64>() / t.len() as f64;
        let var = t
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / t.len() as f64;
        (mean, var.sqrt())
    };
    for (name, std) in [
        ("transformer.wte.weight", 0.02),
        ("transformer.h.1.mlp.c_fc.weight", 0.02),
        ("transformer.h.3.attn.c_proj.weight", 0.02 / 8f64.sqrt()),
        ("transformer.h.0.mlp.c_proj.weight", 0.02 / 8f64.sqrt()),
    ] {
        let (m, s) = stats(name);
        assert!(
            m.abs() < 0.1 * std && (s / std - 1.0).abs() < 0.05,
            "{name}: mean {m}, std {s}"
        );
    }
    assert_eq!(stats("transformer.h.2.ln_1.weight"), (1.0, 0.0));
    assert_eq!(stats("transformer.h.2.attn.c_attn.bias"), (0.0, 0.0));
    assert_eq!(stats("transformer.ln_f.bias"), (0.0, 0.0));
}

#[test]
fn flops_follow_the_6n_plus_attention_convention() {
    let gpt2 = cfg(12, 12, 768, 50257, 1024);
    let n = (124_439_808 - 1024 * 768) as f64;
    assert_eq!(matmul_params(&gpt2), n);
    assert_eq!(
        flops_per_token(&gpt2),
        6.0 * n + 12.0 * 12.0 * 768.0 * 1024.0
    );
    let (layout, f32) = (QkvLayout::Packed, Precision::F32);
    assert!(
        Activations::bytes(&gpt2, 1, 1024, layout, f32)
            > Activations::bytes(&gpt2, 1, 512, layout, f32)
    );
}
