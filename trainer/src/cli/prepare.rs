//! `cptrain prepare INPUT... --out DIR`: text to token shards, with a
//! progress bar and a summary.

use std::io::IsTerminal;

use appctx::Environment;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::PrepareArgs;
use super::commands::CommandError;
use crate::components::{configured_tokenizer, with_tokenizer};
use crate::data::{PrepareOptions, SplitSummary, input_files};

/// Tokenizes the inputs into shards and prints what was written.
pub fn prepare(env: &Environment, args: &PrepareArgs) -> Result<(), CommandError> {
    let tokenizer = match &args.tokenizer {
        Some(name) => configured_tokenizer(&with_tokenizer(env, name)?)?,
        None => configured_tokenizer(env)?,
    };
    let mut total = 0;
    for input in args.inputs.iter().chain(&args.val_inputs) {
        for file in input_files(input)? {
            total += std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        }
    }
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("a valid template"),
    );
    let options = PrepareOptions {
        inputs: args.inputs.clone(),
        val_inputs: args.val_inputs.clone(),
        val_fraction: args.val_fraction,
        jsonl_field: args.jsonl_field.clone(),
        shard_tokens: args.shard_tokens,
        out: args.out.clone(),
    };
    let summary = crate::data::prepare(&options, &*tokenizer, &|read| bar.set_position(read));
    bar.finish_and_clear();
    let summary = summary?;
    let line = |name: &str, split: &SplitSummary| {
        let per_token = split.bytes as f64 / split.tokens.max(1) as f64;
        format!(
            "{name:<5} {:>9} documents {:>12} tokens {:>6.2} bytes/token  {} shard(s)",
            split.documents,
            split.tokens,
            per_token,
            split.shards.len()
        )
    };
    println!("{}", line("train", &summary.train));
    println!("{}", line("val", &summary.val));
    if summary.val.documents == 0 {
        println!(
            "no validation shard: training holds out the last data.val_fraction of the windows"
        );
    }
    println!(
        "wrote {} ({} tokenizer, vocabulary {}); train with --set data.source=tokens \
         --set data.path={} --set data.tokenizer={}",
        args.out.display(),
        summary.tokenizer,
        summary.vocab_size,
        args.out.display(),
        summary.tokenizer
    );
    Ok(())
}
