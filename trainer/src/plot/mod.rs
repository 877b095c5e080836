//! `cptrain plot`: the curves of one or more runs (loss and eval loss,
//! learning rate, tokens/s, gradient norm against the step) from their
//! `metrics.jsonl`, overlaid with a legend, as one PNG and one SVG.
//!
//! ```no_run
//! use cptrain::plot::{PlotFiles, RunMetrics, render};
//! use std::path::Path;
//!
//! let runs = [RunMetrics::read(Path::new("runs/a"))?, RunMetrics::read(Path::new("runs/b"))?];
//! render(&runs, &PlotFiles::in_run_dir(Path::new("runs/a")))?; // runs/a/plot.png, plot.svg
//! # Ok::<(), cptrain::plot::PlotError>(())
//! ```

mod error;
mod figure;
mod render;
mod run;

pub use error::PlotError;
pub use figure::{FIGURE_SIZE, draw_figure};
pub use render::{PLOT_STEM, PlotFiles, plot_hint, render};
pub use run::RunMetrics;
