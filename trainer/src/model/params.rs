use super::ModelConfig;

/// One named tensor inside the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Hugging Face `GPT2LMHeadModel` name, e.g. `transformer.h.0.attn.c_attn.weight`.
    pub name: String,
    /// Shape in the Hugging Face layout (Conv1D weights are `[in, out]`).
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat buffer.
    pub offset: usize,
    /// Whether AdamW applies weight decay (2-D weights and embeddings only).
    pub weight_decay: bool,
    /// Trailing rows that are padding (`wte` with `model.vocab_padding`):
    /// zero, never saved, and zero again when loaded.
    pub padding_rows: usize,
}

impl ParamSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The element range of this tensor in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.numel()
    }

    /// The shape in a file: the in-memory shape less the padding rows.
    pub fn saved_shape(&self) -> Vec<usize> {
        let mut shape = self.shape.clone();
        shape[0] -= self.padding_rows;
        shape
    }

    /// The elements a file holds: the range less the padding rows (rows are
    /// contiguous, so they are the range's first elements).
    pub fn saved_range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.saved_shape().iter().product::<usize>()
    }
}

/// Where every GPT-2 parameter lives in one flat `f32` buffer (llm.c style).
///
/// Parameters, gradients and optimizer moments all share this layout, so a
/// gradient all-reduce, an AdamW step or a checkpoint is one pass over a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    specs: Vec<ParamSpec>,
    len: usize,
}

impl ParamLayout {
    /// The GPT-2 layout for `cfg`, in Hugging Face order: `wte` (rows
    /// padded to [`ModelConfig::padded_vocab`]), `wpe` (rows:
    /// [`ModelConfig::positions`]), the blocks `h.0 .. h.{L-1}`, then
    /// `ln_f`. `lm_head` is tied to `wte`.
    pub fn gpt2(cfg: &ModelConfig) -> Self {
        let c = cfg.n_embd;
        let mut layout = ParamLayout {
            specs: Vec::new(),
            len: 0,
        };
        layout.push("transformer.wte.weight", &[cfg.padded_vocab(), c], true);
        layout.specs[0].padding_rows = cfg.padded_vocab() - cfg.vocab_size;
        layout.push("transformer.wpe.weight", &[cfg.positions(), c], true);
        for i in 0..cfg.n_layer {
            let p = format!("transformer.h.{i}");
            layout.push(&format!("{p}.ln_1.weight"), &[c], false);
            layout.push(&format!("{p}.ln_1.bias"), &[c], false);
            layout.push(&format!("{p}.attn.c_attn.weight"), &[c, 3 * c], true);
            layout.push(&format!("{p}.attn.c_attn.bias"), &[3 * c], false);
            layout.push(&format!("{p}.attn.c_proj.weight"), &[c, c], true);
            layout.push(&format!("{p}.attn.c_proj.bias"), &[c], false);
            layout.push(&format!("{p}.ln_2.weight"), &[c], false);
            layout.push(&format!("{p}.ln_2.bias"), &[c], false);
            layout.push(&format!("{p}.mlp.c_fc.weight"), &[c, 4 * c], true);
            layout.push(&format!("{p}.mlp.c_fc.bias"), &[4 * c], false);
            layout.push(&format!("{p}.mlp.c_proj.weight"), &[4 * c, c], true);
            layout.push(&format!("{p}.mlp.c_proj.bias"), &[c], false);
        }
        layout.push("transformer.ln_f.weight", &[c], false);
        layout.push("transformer.ln_f.bias", &[c], false);
        layout
    }

    /// A layout of `specs`' tensors packed in the given order: each offset
    /// is recomputed as the size of the tensors before it (the offsets given
    /// are ignored). Tensor-parallel ranks describe their local buffers this
    /// way (`tensor_parallel::RankShard`).
    pub fn packed(specs: impl IntoIterator<Item = ParamSpec>) -> Self {
        let mut len = 0;
        let specs = specs
            .into_iter()
            .map(|spec| {
                let spec = ParamSpec {
                    offset: len,
                    ..spec
                };
                len += spec.numel();
                spec
            })
            .collect();
        ParamLayout { specs, len }
    }

    fn push(&mut self, name: &str, shape: &[usize], weight_decay: bool) {
        let spec = ParamSpec {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset: self.len,
            weight_decay,
            padding_rows: 0,
        };
        self.len += spec.numel();
        self.specs.push(spec);
    }

    /// All tensors, in layout order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Total number of `f32` elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the layout holds no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tensor called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_124m_has_the_published_parameter_count() {
        let cfg = ModelConfig::gpt2_124m();
        let layout = ParamLayout::gpt2(&cfg);
        // GPT-2 small: 124,439,808 parameters with tied embeddings.
        assert_eq!(layout.len(), 124_439_808);
        assert_eq!(layout.specs().len(), 2 + 12 * 12 + 2);
        let c_attn = layout.get("transformer.h.11.attn.c_attn.weight").unwrap();
        assert_eq!(c_attn.shape, vec![768, 2304]);
        assert!(c_attn.weight_decay);
        assert!(
            !layout
                .get("transformer.h.0.ln_1.bias")
                .unwrap()
                .weight_decay
        );
        let last = layout.specs().last().unwrap();
        assert_eq!(last.range().end, layout.len());
    }

    #[test]
    fn packing_a_layouts_specs_rebuilds_its_offsets() {
        let cfg = ModelConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 8,
            vocab_size: 11,
            seq_len: 4,
            init: None,
            n_positions: Some(6),
            vocab_padding: 4,
        };
        let layout = ParamLayout::gpt2(&cfg);
        let scrambled = layout.specs().iter().map(|s| ParamSpec {
            offset: usize::MAX,
            ..s.clone()
        });
        assert_eq!(ParamLayout::packed(scrambled), layout);
    }
}
