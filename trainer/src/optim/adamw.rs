use std::ops::Range;

use super::{OptimStateError, Optimizer, OptimizerConfig, OptimizerFactory, OptimizerState};
use crate::device::{Buffer, DeviceError, Slice, SliceMut};
use crate::kernels::{Kernels, Threads};
use crate::model::ParamLayout;

/// Elements per thread below which the update runs on the calling thread:
/// handing work over costs more than updating a few thousand floats.
const MIN_ELEMENTS_PER_THREAD: usize = 1 << 16;

/// Which elements of the flat buffer get weight decay: sorted, disjoint ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecayMask {
    len: usize,
    decayed: Vec<Range<usize>>,
}

impl DecayMask {
    /// A mask over `len` elements that decays exactly the elements of `decayed`
    /// (ranges may be given in any order; adjacent ones are merged).
    pub fn new(len: usize, decayed: impl IntoIterator<Item = Range<usize>>) -> Self {
        let mut decayed: Vec<Range<usize>> =
            decayed.into_iter().filter(|r| !r.is_empty()).collect();
        decayed.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(decayed.len());
        for r in decayed {
            assert!(r.end <= len, "decay range {r:?} beyond buffer of {len}");
            match merged.last_mut() {
                Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        DecayMask {
            len,
            decayed: merged,
        }
    }

    /// The mask `ParamSpec::weight_decay` describes for a whole model.
    pub fn from_layout(layout: &ParamLayout) -> Self {
        let decayed = layout
            .specs()
            .iter()
            .filter(|s| s.weight_decay)
            .map(|s| s.range());
        DecayMask::new(layout.len(), decayed)
    }

    /// Number of elements the mask covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask covers no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The decayed ranges: sorted, disjoint, adjacent ones merged.
    pub fn decayed_ranges(&self) -> &[Range<usize>] {
        &self.decayed
    }

    /// Splits `window` (a range of the buffer) into runs of equal decay flag,
    /// in order.
    fn runs(&self, window: Range<usize>) -> impl Iterator<Item = (Range<usize>, bool)> + '_ {
        let mut cursor = window.start;
        let mut ranges = self.decayed.iter().peekable();
        std::iter::from_fn(move || {
            while ranges.peek().is_some_and(|r| r.end <= cursor) {
                ranges.next();
            }
            if cursor >= window.end {
                return None;
            }
            let start = cursor;
            let run = match ranges.peek() {
                Some(r) if r.start <= cursor => (start..r.end.min(window.end), true),
                Some(r) => (start..r.start.min(window.end), false),
                None => (start..window.end, false),
            };
            cursor = run.0.end;
            Some(run)
        })
    }
}

/// One AdamW step as a device applies it: the decay mask and the step's
/// scalars, the same for every element.
///
/// For each element: `p ← p·decay_factor` (decayed elements only),
/// `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
/// `p ← p − step_size · m / (√v / bias_correction2_sqrt + ε)`.
#[derive(Clone, Copy, Debug)]
pub struct AdamWUpdate<'a> {
    /// Which elements are decayed.
    pub mask: &'a DecayMask,
    /// `β1`.
    pub beta1: f32,
    /// `β2`.
    pub beta2: f32,
    /// `ε`.
    pub eps: f32,
    /// `lr / (1 − β1ᵗ)`.
    pub step_size: f32,
    /// `sqrt(1 − β2ᵗ)`.
    pub bias_correction2_sqrt: f32,
    /// `1 − lr·weight_decay`, applied to decayed elements only.
    pub decay_factor: f32,
}

impl AdamWUpdate<'_> {
    /// Applies the update to host buffers, split over `threads`.
    pub fn apply_on_host(
        &self,
        threads: &Threads,
        params: &mut [f32],
        grads: &[f32],
        m: &mut [f32],
        v: &mut [f32],
    ) {
        let len = self.mask.len();
        assert_eq!(params.len(), len, "AdamW: parameter buffer length");
        assert_eq!(grads.len(), len, "AdamW: gradient buffer length");
        let parts = threads.count().min(len / MIN_ELEMENTS_PER_THREAD).max(1);
        let chunk = len.div_ceil(parts).max(1);
        threads.for_each_chunk3(params, chunk, m, chunk, v, chunk, |i, p, m, v| {
            let offset = i * chunk;
            let g = &grads[offset..offset + p.len()];
            self.update_chunk(offset, p, g, m, v);
        });
    }

    /// Updates the elements `offset .. offset + p.len()` of the buffer.
    fn update_chunk(&self, offset: usize, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (run, decayed) in self.mask.runs(offset..offset + p.len()) {
            let local = run.start - offset..run.end - offset;
            let decay_factor = if decayed { self.decay_factor } else { 1.0 };
            let elements = p[local.clone()]
                .iter_mut()
                .zip(&g[local.clone()])
                .zip(m[local.clone()].iter_mut().zip(&mut v[local]));
            for ((p, &g), (m, v)) in elements {
                *m = self.beta1 * *m + (1.0 - self.beta1) * g;
                *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
                let denom = v.sqrt() / self.bias_correction2_sqrt + self.eps;
                *p = *p * decay_factor - self.step_size * *m / denom;
            }
        }
    }
}

/// AdamW with `torch.optim.AdamW` semantics over one flat `f32` buffer, its
/// moments in the memory of the device that runs it.
///
/// For each element, at step `t` (1-based) with learning rate `lr`:
/// `p ← p·(1 − lr·wd)` (decayed elements only), `m ← β1·m + (1−β1)·g`,
/// `v ← β2·v + (1−β2)·g²`, `p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)`,
/// as one fused pass of the device's [`Kernels::adamw_update`].
#[derive(Debug)]
pub struct AdamW {
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    mask: DecayMask,
    step: u64,
    m: Buffer,
    v: Buffer,
}

impl AdamW {
    /// A fresh optimizer (zero moments, step 0) for a buffer shaped like
    /// `mask`, its moments allocated on the device of `kernels`.
    pub fn new(
        cfg: &OptimizerConfig,
        mask: DecayMask,
        kernels: &dyn Kernels,
    ) -> Result<Self, DeviceError> {
        let len = mask.len();
        Ok(AdamW {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
            mask,
            step: 0,
            m: kernels.alloc(len)?,
            v: kernels.alloc(len)?,
        })
    }

    /// The names of AdamW's slots: torch's state keys for `m` and `v`.
    pub const SLOTS: [&'static str; 2] = ["exp_avg", "exp_avg_sq"];
}

impl Optimizer for AdamW {
    fn state(&self) -> Result<OptimizerState<'_>, OptimStateError> {
        Ok(OptimizerState {
            step: self.step,
            slots: vec![
                (Self::SLOTS[0].into(), self.m.to_host()?),
                (Self::SLOTS[1].into(), self.v.to_host()?),
            ],
        })
    }

    fn load_state(&mut self, state: &OptimizerState<'_>) -> Result<(), OptimStateError> {
        state.check(&Self::SLOTS, self.mask.len())?;
        let slot = |name| state.slot(name).expect("checked: both slots are there");
        self.m.copy_from_host(slot(Self::SLOTS[0]))?;
        self.v.copy_from_host(slot(Self::SLOTS[1]))?;
        self.step = state.step;
        Ok(())
    }

    /// Updates `params` as one fused pass of [`Kernels::adamw_update`].
    fn step(&mut self, kernels: &dyn Kernels, params: SliceMut<'_>, grads: Slice<'_>, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let update = AdamWUpdate {
            mask: &self.mask,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            eps: self.eps as f32,
            step_size: (lr / (1.0 - self.beta1.powi(t))) as f32,
            bias_correction2_sqrt: (1.0 - self.beta2.powi(t)).sqrt() as f32,
            decay_factor: (1.0 - lr * self.weight_decay) as f32,
        };
        kernels.adamw_update(&update, params, grads, self.m.view_mut(), self.v.view_mut());
    }
}

/// Builds [`AdamW`] with the `[optimizer]` section's hyperparameters
/// (`optimizer.kind = "adamw"`, the default).
#[derive(Clone, Debug)]
pub struct AdamWFactory(pub OptimizerConfig);

impl OptimizerFactory for AdamWFactory {
    fn build(
        &self,
        mask: DecayMask,
        kernels: &dyn Kernels,
    ) -> Result<Box<dyn Optimizer>, DeviceError> {
        Ok(Box::new(AdamW::new(&self.0, mask, kernels)?))
    }

    /// The two moments.
    fn state_per_parameter(&self) -> usize {
        AdamW::SLOTS.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::CpuKernels;
    use crate::model::ModelConfig;

    fn cfg() -> OptimizerConfig {
        OptimizerConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            ..OptimizerConfig::default()
        }
    }

    /// Three steps on four elements, the first two decayed, with a changing lr.
    /// Expected values come from the torch.optim.AdamW formula evaluated in
    /// f64 Python, independently of this code. Tolerance 2e-6: a few f32 ulps
    /// of values near 1 accumulated over three steps.
    #[test]
    fn matches_hand_computed_torch_steps() {
        let kernels = CpuKernels::default();
        let mask = DecayMask::new(4, std::iter::once(0..2));
        let mut adamw = AdamW::new(&cfg(), mask, &kernels).unwrap();
        let mut p = vec![1.0_f32, -2.0, 0.5, 3.0];
        let steps: [(f64, [f32; 4], [f64; 4]); 3] = [
            (
                0.01,
                [0.1, -0.2, 0.3, 0.0],
                [0.989000001, -1.9880000005, 0.4900000003333333, 3.0],
            ),
            (
                0.02,
                [-0.5, 0.4, 0.1, 1e-3],
                [
                    0.9988526580209766,
                    -1.9912914792804766,
                    0.4724007682249627,
                    2.985301005214219,
                ],
            ),
            (
                0.005,
                [0.2, 0.2, -0.3, 2.0],
                [
                    0.999337059220284,
                    -1.9928926063445016,
                    0.4721588779846835,
                    2.982183487906019,
                ],
            ),
        ];
        for (lr, g, expected) in steps {
            adamw.step(&kernels, p.as_mut_slice().into(), g.as_slice().into(), lr);
            for (got, want) in p.iter().zip(expected) {
                assert!((*got as f64 - want).abs() < 2e-6, "{p:?} vs {expected:?}");
            }
        }
        let state = adamw.state().unwrap();
        assert_eq!(state.step, 3);
        let (got_m, got_v) = (
            state.slot("exp_avg").unwrap(),
            state.slot("exp_avg_sq").unwrap(),
        );
        let (m, v) = (
            [-0.0169, 0.0398, 0.0033, 0.20009],
            [0.01432625, 0.011405, 0.00903625, 0.2000000475],
        );
        for i in 0..4 {
            assert!((got_m[i] as f64 - m[i]).abs() < 1e-7, "m {got_m:?}");
            assert!((got_v[i] as f64 - v[i]).abs() < 1e-7, "v {got_v:?}");
        }
    }

    /// With zero gradients the Adam term vanishes, so a step multiplies
    /// decayed elements by exactly `1 − lr·wd` and leaves the rest alone.
    #[test]
    fn only_two_dimensional_weights_are_decayed() {
        let model = ModelConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            vocab_size: 11,
            seq_len: 6,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        };
        let layout = ParamLayout::gpt2(&model);
        let kernels = CpuKernels::default();
        let mut adamw = AdamW::new(&cfg(), DecayMask::from_layout(&layout), &kernels).unwrap();
        let mut p = vec![2.0_f32; layout.len()];
        let zeros = vec![0.0; layout.len()];
        adamw.step(&kernels, (&mut p).into(), (&zeros).into(), 0.5);
        let decayed = (2.0 * (1.0 - 0.5 * 0.1)) as f32;
        for spec in layout.specs() {
            let want = if spec.shape.len() == 2 { decayed } else { 2.0 };
            assert!(p[spec.range()].iter().all(|&x| x == want), "{}", spec.name);
        }
    }

    /// The threaded update gives bit-identical results to the serial one
    /// (each element's arithmetic does not depend on the split).
    #[test]
    fn threads_do_not_change_the_result() {
        let len = 5 * MIN_ELEMENTS_PER_THREAD + 123;
        let mask = DecayMask::new(len, [7..1000, 200_000..len - 5]);
        let grads: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let run = |threads| {
            let kernels = CpuKernels::new(Threads::new(threads).unwrap());
            let mut adamw = AdamW::new(&cfg(), mask.clone(), &kernels).unwrap();
            let mut p: Vec<f32> = (0..len).map(|i| (i % 13) as f32).collect();
            adamw.step(&kernels, (&mut p).into(), (&grads).into(), 1e-2);
            adamw.step(&kernels, (&mut p).into(), (&grads).into(), 2e-2);
            p
        };
        assert_eq!(run(1), run(4));
    }

    #[test]
    fn mask_runs_cover_a_window_in_order() {
        let mask = DecayMask::new(20, [10..12, 2..5, 4..8]);
        let runs: Vec<_> = mask.runs(3..15).collect();
        assert_eq!(
            runs,
            vec![
                (3..8, true),
                (8..10, false),
                (10..12, true),
                (12..15, false)
            ]
        );
    }

    #[test]
    fn a_state_of_another_shape_or_optimizer_is_refused() {
        let kernels = CpuKernels::default();
        let mut adamw = AdamW::new(&cfg(), DecayMask::new(3, []), &kernels).unwrap();
        let state = |m: Vec<f32>, v: Vec<f32>| OptimizerState {
            step: 4,
            slots: vec![
                ("exp_avg".into(), m.into()),
                ("exp_avg_sq".into(), v.into()),
            ],
        };
        let err = adamw
            .load_state(&state(vec![0.0; 3], vec![0.0; 2]))
            .unwrap_err();
        assert!(
            err.to_string().contains("the model has 3 parameters"),
            "{err}"
        );
        let momentum = OptimizerState {
            step: 4,
            slots: vec![("momentum_buffer".into(), vec![0.0; 3].into())],
        };
        let err = adamw.load_state(&momentum).unwrap_err();
        assert!(err.to_string().contains("momentum_buffer"), "{err}");
        let ok = state(vec![1.0; 3], vec![2.0; 3]);
        adamw.load_state(&ok).unwrap();
        assert_eq!(adamw.state().unwrap(), ok);
    }
}
