//! cptrain's built-in appctx components. Each is a plain function whose
//! parameters are its dependencies; configuration picks the providers
//! (`parallel.backend`, `data.source`, `kernels.device`, `parallel.cp_comm`),
//! and a plugin crate can add providers under new names.
//!
//! Two scopes: the process-level context (configuration, plan, data, start
//! weights, metrics sinks, the trainer runner) and one child context per rank
//! (scope [`RANK_SCOPE`]: its process groups, kernels, attention and trainer).
//!
//! All of them belong to the appctx module [`MODULE`] (`cptrain`): a context
//! takes them only when it names the module or opts into every linked module
//! (as the `cptrain` binary does), so an unrelated context of an application
//! that embeds the trainer sees none of them.

mod configured;
mod linked_attention;
mod optimizer;
mod process;
mod rank;
mod sections;
mod tokenizers;

pub use configured::configured;
pub use linked_attention::LinkedAttention;
pub use process::MachinePeak;
pub use tokenizers::{configured_tokenizer, with_tokenizer};

appctx::module!(pub MODULE, name = "cptrain");

/// The scope of the per-rank child contexts.
pub const RANK_SCOPE: &str = "rank";

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use appctx::{ComponentDef, ContextBuilder, Environment, Error};

    /// An application that links the trainer and builds a context of its
    /// own gets none of the trainer's components (nor its required keys).
    #[test]
    fn an_unrelated_context_sees_none_of_the_trainers_components() {
        let trainer = ContextBuilder::new().module(&super::MODULE).build();
        assert!(
            matches!(&trainer, Err(Error::MissingConfigKey { key, .. }) if key.starts_with("model.")),
            "{trainer:?}"
        );
        let own = ContextBuilder::new()
            .environment(Environment::empty())
            .component(ComponentDef::new("answer", || Arc::new(42_u32)))
            .build()
            .unwrap();
        assert_eq!(*own.get::<u32>().unwrap(), 42);
        assert!(
            own.graph()
                .nodes
                .iter()
                .all(|n| n.name == "answer" || n.name == "environment")
        );
    }
}
