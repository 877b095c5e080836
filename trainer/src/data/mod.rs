//! Training data: sources of token windows and the batch builder that turns
//! them into each rank's micro-batches, following the data contract of
//! ARCHITECTURE.md ("Data and tokens").
//!
//! ```
//! use cptrain::data::{BatchBuilder, BatchPlan, DataConfig, RankCoords, Split, open_data_source};
//! use cptrain::model::ModelConfig;
//!
//! let model = ModelConfig { n_layer: 1, n_head: 1, n_embd: 8, vocab_size: 16, seq_len: 8, init: None,
//!     n_positions: None, vocab_padding: 1 };
//! let source = open_data_source(&DataConfig::default(), &model, 42).unwrap(); // synthetic copy task
//! let plan = BatchPlan::new(8, 4, Some(2), RankCoords::single()).unwrap();
//! let mut builder = BatchBuilder::new(plan, source).unwrap();
//! let mut batch = builder.new_micro_batch();
//! builder.fill(Split::Train, 0, 1, &mut batch).unwrap(); // step 0, second micro-batch
//! assert_eq!(batch.tokens.len(), 2 * 8);
//! assert_eq!(batch.positions, (0..8).collect::<Vec<_>>());
//! ```

mod batch;
mod config;
mod error;
mod fingerprint;
mod open;
mod prepare;
mod shard;
mod source;
mod synthetic;
mod token_file;
mod token_paths;
mod train_config;
mod window_order;

pub use batch::{BatchBuilder, BatchPlan, BatchPlanError, MicroBatch, RankCoords};
pub use config::{DataConfig, SyntheticTask};
pub use error::DataError;
pub use fingerprint::{DataFingerprint, FileFingerprint};
pub use open::{BUILTIN_SOURCES, open_data_source};
pub use prepare::{
    PREPARE_FILE, PrepareError, PrepareOptions, PrepareSummary, SplitSummary, input_files, prepare,
};
pub use shard::{HeaderError, LLMC_MAGIC, SHARD_MAGIC, ShardHeader, ShardWriter};
pub use source::{DataSource, IGNORE_TARGET, Split};
pub use synthetic::{SYNTHETIC_VAL_WINDOWS, SyntheticSource};
pub use token_file::{FileSource, TokenEncoding};
pub use token_paths::TokenPaths;
pub use train_config::TrainConfig;
pub use window_order::WindowOrder;
