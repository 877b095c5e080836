//! `cptrain plot RUN_DIR [RUN_DIR...] [--out PATH]`.

use super::PlotArgs;
use super::commands::CommandError;
use crate::plot::{PlotFiles, RunMetrics, render};

/// Reads every run's metrics, draws them into one PNG and one SVG, and
/// says where they are.
pub(super) fn plot(args: &PlotArgs) -> Result<(), CommandError> {
    let runs = args
        .runs
        .iter()
        .map(|dir| RunMetrics::read(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let files = match (&args.out, args.runs.first()) {
        (Some(out), _) => PlotFiles::at(out),
        (None, Some(first)) => PlotFiles::in_run_dir(first),
        (None, None) => return Err("give at least one RUN_DIR".into()),
    };
    render(&runs, &files)?;
    for run in &runs {
        let last = run.records.last().map_or(0, |r| r.step);
        println!(
            "{}: {} records, to step {last}",
            run.name,
            run.records.len()
        );
    }
    println!("wrote {} and {}", files.png.display(), files.svg.display());
    Ok(())
}
