use super::TpSharding;

impl TpSharding {
    /// Parameters every TP rank holds (the same number on each: the
    /// vocabulary is split evenly, padding included), from the sizes alone:
    /// `R·C + P·C + L·(12·C²/tp + 7·C/tp + 6·C) + 2·C`, with `R` =
    /// [`VocabSplit::rows_per_rank`](super::VocabSplit::rows_per_rank) and
    /// `P` the rows of `wpe`; `6·C` per block are the replicated LayerNorms
    /// and row-parallel biases. Gradients and both AdamW moments have the
    /// same size. In `f64` like
    /// [`ModelConfig::param_count`](crate::model::ModelConfig::param_count),
    /// so `check` can size absurd shapes without building anything.
    pub fn params_per_rank(&self) -> f64 {
        let cfg = self.model();
        let (c, tp) = (cfg.n_embd as f64, self.tp() as f64);
        let per_block = 12.0 * c * c / tp + 7.0 * c / tp + 6.0 * c;
        (self.vocab().rows_per_rank() as f64 + cfg.positions() as f64) * c
            + cfg.n_layer as f64 * per_block
            + 2.0 * c
    }
}
