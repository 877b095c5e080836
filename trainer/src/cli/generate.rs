//! `cptrain generate`: continue a prompt with a trained model, streaming
//! the text as it is chosen.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::ConfigLayers;
use super::commands::CommandError;
use super::trained::open_trained;
use crate::inference::{Decoder, Request, Sampler, SamplingConfig, Utf8Stream, generate};

/// Options of `cptrain generate`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// A checkpoint (`<out_dir>/checkpoints/step-N`), a run's out_dir (its
    /// newest checkpoint), or a Hugging Face GPT-2 directory (config.json
    /// and model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The text to continue (empty: start from the end-of-text token, or
    /// token 0 when the tokenizer has none).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Most new tokens per sample (fewer at end-of-text or when the
    /// sequence fills the context, model.seq_len tokens).
    #[arg(long, default_value_t = 200)]
    pub max_new_tokens: usize,
    /// Divides the logits: below 1 sharper, above 1 flatter; 0 = greedy.
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub temperature: f32,
    /// Sample among the k most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Sample among the most likely tokens whose probability reaches p
    /// (nucleus sampling; 1 = all).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the draws (default: a random one, printed on stderr).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Independent samples of the same prompt (sample i draws from stream i
    /// of the seed).
    #[arg(long, default_value_t = 1)]
    pub num_samples: u64,
}

/// Runs `cptrain generate`: the prompt and each sample's continuation on
/// stdout as the tokens arrive; why each sample stopped on stderr.
pub(super) fn generate_command(
    layers: &ConfigLayers,
    args: &GenerateArgs,
) -> Result<(), CommandError> {
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };
    sampling.validate()?;
    let loaded = open_trained(layers, &args.checkpoint)?;
    let (model, tokenizer) = (&loaded.trained.model, &*loaded.tokenizer);
    let mut prompt = tokenizer.encode(&args.prompt);
    if prompt.is_empty() {
        prompt.push(tokenizer.end_of_text().unwrap_or(0));
    }
    if let Some(&id) = prompt.iter().find(|&&id| id as usize >= model.vocab_size) {
        return Err(format!(
            "--prompt: token {id} ({:?}, data.tokenizer = \"{}\") is not below the model's \
             vocab_size = {}; the model was trained on other ids (set data.tokenizer to the \
             run's tokenizer, or use text the model knows)",
            tokenizer.decode(&[id]),
            tokenizer.name(),
            model.vocab_size
        )
        .into());
    }
    if prompt.len() >= model.seq_len {
        return Err(format!(
            "--prompt is {} tokens, but the model's context is model.seq_len = {} tokens, so a \
             prompt leaves room to generate only below {} tokens; shorten it",
            prompt.len(),
            model.seq_len,
            model.seq_len
        )
        .into());
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    if args.seed.is_none() && !sampling.is_greedy() {
        eprintln!("seed {seed} (--seed {seed} reproduces these samples)");
    }
    let mut decoder = Decoder::new(model, loaded.kernels.clone(), &loaded.trained.params)?;
    let mut stdout = std::io::stdout().lock();
    for i in 0..args.num_samples {
        if i > 0 {
            writeln!(stdout, "\n---------------")?;
        }
        write!(stdout, "{}", args.prompt)?;
        stdout.flush()?;
        let mut text = Utf8Stream::new();
        let mut failed = None;
        let request = Request {
            prompt: &prompt,
            max_new_tokens: args.max_new_tokens,
            end_of_text: tokenizer.end_of_text(),
        };
        let mut sampler = Sampler::new(sampling, seed, i);
        let out = generate(&mut decoder, &mut sampler, request, &mut |token| {
            let piece = text.push(&tokenizer.decode_bytes(&[token]));
            if let Err(e) = write!(stdout, "{piece}").and_then(|()| stdout.flush()) {
                failed.get_or_insert(e);
            }
        })?;
        if let Some(error) = failed {
            return Err(format!("writing the sample to stdout: {error}").into());
        }
        writeln!(stdout, "{}", text.finish())?;
        stdout.flush()?;
        eprintln!(
            "[sample {}/{}: {} new tokens, stopped: {}]",
            i + 1,
            args.num_samples,
            out.tokens.len(),
            out.stop
        );
    }
    Ok(())
}
