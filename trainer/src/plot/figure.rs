use super::RunMetrics;
use crate::metrics::StepRecord;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;

/// Width and height of the figure in pixels.
pub const FIGURE_SIZE: (u32, u32) = (1280, 860);

/// One chart of the figure: a value of each record against its step.
struct Panel {
    title: &'static str,
    /// Drawn as a line per run.
    line: fn(&StepRecord) -> f64,
    /// Drawn as points per run, on the steps that have it.
    points: Option<Points>,
}

/// A value some steps have, drawn as points named `<run> <label>`.
#[derive(Clone, Copy)]
struct Points {
    label: &'static str,
    value: fn(&StepRecord) -> Option<f64>,
}

/// Loss (with eval loss as points), learning rate, tokens/s, gradient norm.
const PANELS: [Panel; 4] = [
    Panel {
        title: "loss",
        line: |r| r.loss,
        points: Some(Points {
            label: "eval",
            value: |r| r.eval_loss,
        }),
    },
    Panel {
        title: "learning rate",
        line: |r| r.lr,
        points: None,
    },
    Panel {
        title: "tokens/s",
        line: |r| r.tokens_per_s,
        points: None,
    },
    Panel {
        title: "grad norm (before clipping)",
        line: |r| r.grad_norm,
        points: None,
    },
];

/// Draws the four panels of `runs`, each run in its own colour and named in
/// every panel's legend, on `root`.
pub fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[RunMetrics],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    for (area, panel) in root.split_evenly((2, 2)).iter().zip(&PANELS) {
        draw_panel(area, panel, runs)?;
    }
    root.present()
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    runs: &[RunMetrics],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let values = runs.iter().flat_map(|run| {
        run.records.iter().flat_map(|r| {
            let point = panel.points.and_then(|p| (p.value)(r));
            std::iter::once((panel.line)(r)).chain(point)
        })
    });
    let steps = runs
        .iter()
        .flat_map(|run| run.records.iter().map(|r| r.step));
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(step_range(steps), value_range(values))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_label_formatter(&|v| tick_label(*v))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, run) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let line = run
            .records
            .iter()
            .map(|r| (r.step, (panel.line)(r)))
            .filter(|(_, v)| v.is_finite());
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))?
            .label(run.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        if let Some(Points { label, value }) = panel.points {
            let points: Vec<(u64, f64)> = run
                .records
                .iter()
                .filter_map(|r| Some((r.step, value(r).filter(|v| v.is_finite())?)))
                .collect();
            if !points.is_empty() {
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 4, color.filled())),
                    )?
                    .label(format!("{} {label}", run.name))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()
}

/// The steps from the first to the last (at least one step wide).
fn step_range(steps: impl Iterator<Item = u64>) -> Range<u64> {
    let (lo, hi) = steps.fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let lo = lo.min(hi);
    lo..hi.max(lo + 1)
}

/// The range of the finite `values` with 5 % room above and below; a
/// constant value gets ±10 % of itself (±1 at 0), and no value at all `0..1`.
fn value_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return 0.0..1.0;
    }
    let room = if hi > lo {
        0.05 * (hi - lo)
    } else if lo != 0.0 {
        0.1 * lo.abs()
    } else {
        1.0
    };
    lo - room..hi + room
}

/// A tick value in at most four digits: `2.75`, `0.9`, `120`; `6.0e-4`
/// below 0.01; `9.5k`, `16k`, `1.25M` from a thousand on.
fn tick_label(v: f64) -> String {
    /// `{:.3}` without trailing zeros: `2.750` is `2.75`, `120.000` is `120`.
    fn short(v: f64) -> String {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
    let a = v.abs();
    match a {
        0.0 => "0".into(),
        a if a < 1e-2 => format!("{v:.1e}"),
        a if a < 1e3 => short(v),
        a if a < 1e6 => format!("{}k", short(v / 1e3)),
        a if a < 1e9 => format!("{}M", short(v / 1e6)),
        _ => format!("{}G", short(v / 1e9)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_data_with_room_and_are_never_empty() {
        assert_eq!(step_range([3, 9, 5].into_iter()), 3..9);
        assert_eq!(step_range([7].into_iter()), 7..8);
        let r = value_range([1.0, f64::NAN, 21.0, f64::INFINITY].into_iter());
        assert_eq!(r, 0.0..22.0);
        assert_eq!(value_range([10.0, 10.0].into_iter()), 9.0..11.0);
        assert_eq!(value_range([0.0].into_iter()), -1.0..1.0);
        assert_eq!(value_range([f64::NAN].into_iter()), 0.0..1.0);
    }

    #[test]
    fn tick_labels_are_short() {
        let cases = [
            (0.0, "0"),
            (2.75, "2.75"),
            (0.9, "0.9"),
            (120.0, "120"),
            (-0.5, "-0.5"),
            (6e-4, "6.0e-4"),
            (9_500.0, "9.5k"),
            (16_000.0, "16k"),
            (1_250_000.0, "1.25M"),
            (3e9, "3G"),
        ];
        for (value, label) in cases {
            assert_eq!(tick_label(value), label, "{value}");
        }
    }
}
