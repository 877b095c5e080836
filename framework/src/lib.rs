#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cancelled;
mod component;
mod condition;
mod config;
mod context;
pub mod diagnostics;
mod environment;
mod error;
mod events;
mod executor;
mod factory;
mod graph;
mod handle;
mod inject;
mod lazy;
mod lifecycle;
mod module;
mod post_processor;
mod qualifier;
mod registry;
mod report;
mod shutdown;
#[cfg(feature = "signals")]
pub mod signals;

pub use cancelled::Cancelled;
pub use component::{ComponentDef, Scope, TypeKey};
pub use condition::{
    Condition, ConditionOutcome, on_check, on_custom, on_missing, on_not_profile, on_profile,
    on_property, on_property_absent, on_property_or_missing, on_property_present,
};
pub use config::{Config, ConfigSection};
pub use context::{ApplicationContext, ContextBuilder, DryRun, PreparedContext, Resolver};
pub use environment::{EffectiveConfig, EffectiveEntry, Environment, EnvironmentBuilder, Source};
pub use error::{BoxError, Candidate, Error, Result};
pub use events::{ContextClosed, ContextRefreshed, EventListener};
pub use executor::{Executor, TaskHandle};
pub use factory::{Factory, IntoComponent};
pub use graph::{DependencyGraph, GraphEdge, GraphNode};
pub use handle::ContextHandle;
pub use inject::{Dependency, Injectable, SectionDecl};
pub use lazy::Lazy;
pub use lifecycle::{Lifecycle, Runner};
pub use module::{Module, ModuleRegistration};
pub use post_processor::{PostProcessor, PostProcessorRegistration};
pub use qualifier::{Named, Qualifier};
pub use registry::{Registration, registered};
pub use report::{ConditionEntry, ConditionReport, StartupEntry, StartupReport, Status};
pub use shutdown::{CancelCause, CancellationToken, DropGuard};

/// Not public API: used by the macros.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
