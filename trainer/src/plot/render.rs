use super::{FIGURE_SIZE, PlotError, RunMetrics, draw_figure};
use plotters::prelude::*;
use std::ffi::OsString;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The file name, without extension, of the picture `cptrain plot` writes
/// into the first run directory by default.
pub const PLOT_STEM: &str = "plot";

/// Where a figure goes: the same picture as PNG and as SVG.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotFiles {
    /// The raster picture.
    pub png: PathBuf,
    /// The vector picture.
    pub svg: PathBuf,
}

impl PlotFiles {
    /// `PATH.png` and `PATH.svg`; a `.png` or `.svg` ending of `path` is
    /// replaced, any other kept (`runs/a.b` gives `runs/a.b.png`).
    pub fn at(path: &Path) -> Self {
        let with = |ext: &str| match path.extension().and_then(|e| e.to_str()) {
            Some("png" | "svg") => path.with_extension(ext),
            _ => {
                let mut name = OsString::from(path.as_os_str());
                name.push(format!(".{ext}"));
                PathBuf::from(name)
            }
        };
        PlotFiles {
            png: with("png"),
            svg: with("svg"),
        }
    }

    /// `plot.png` and `plot.svg` in `run_dir`.
    pub fn in_run_dir(run_dir: &Path) -> Self {
        Self::at(&run_dir.join(PLOT_STEM))
    }
}

/// The line after a run's summary that says how to draw it.
pub fn plot_hint(out_dir: &Path) -> String {
    let files = PlotFiles::in_run_dir(out_dir);
    format!(
        "curves: cptrain plot {} (writes {} and {})",
        out_dir.display(),
        files.png.display(),
        files.svg.display()
    )
}

/// Draws `runs` (loss and eval loss, learning rate, tokens/s, gradient
/// norm against the step, runs overlaid) into `files.png` and `files.svg`,
/// creating their folders.
pub fn render(runs: &[RunMetrics], files: &PlotFiles) -> Result<(), PlotError> {
    register_font()?;
    let (width, height) = FIGURE_SIZE;
    for path in [&files.png, &files.svg] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PlotError::Io {
                action: "create directory",
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }

    let mut svg = String::new();
    draw_figure(
        &SVGBackend::with_string(&mut svg, FIGURE_SIZE).into_drawing_area(),
        runs,
    )
    .map_err(|e| draw_error(&files.svg, e))?;
    std::fs::write(&files.svg, svg).map_err(|source| PlotError::Io {
        action: "write",
        path: files.svg.clone(),
        source,
    })?;

    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    draw_figure(
        &BitMapBackend::with_buffer(&mut rgb, FIGURE_SIZE).into_drawing_area(),
        runs,
    )
    .map_err(|e| draw_error(&files.png, e))?;
    write_png(&files.png, FIGURE_SIZE, &rgb)
}

fn draw_error(path: &Path, error: impl std::fmt::Display) -> PlotError {
    PlotError::Draw {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// Encodes 8-bit RGB pixels, row by row, as a PNG file.
fn write_png(path: &Path, (width, height): (u32, u32), rgb: &[u8]) -> Result<(), PlotError> {
    let file = std::fs::File::create(path).map_err(|source| PlotError::Io {
        action: "create",
        path: path.to_path_buf(),
        source,
    })?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut writer| {
            writer.write_image_data(rgb)?;
            writer.finish()
        })
        .map_err(|e| draw_error(path, e))
}

/// Registers DejaVu Sans (embedded by the `dejavu` crate; Bitstream Vera
/// license) as plotters' `sans-serif`, once: text needs no system fonts.
fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw {
            path: PathBuf::from("the embedded DejaVu Sans font"),
            message: "plotters cannot read the font".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_goes_beside_the_path_given() {
        let cases = [
            ("out/fig", "out/fig.png", "out/fig.svg"),
            ("out/fig.png", "out/fig.png", "out/fig.svg"),
            ("fig.svg", "fig.png", "fig.svg"),
            ("runs/a.b", "runs/a.b.png", "runs/a.b.svg"),
        ];
        for (given, png, svg) in cases {
            let files = PlotFiles::at(Path::new(given));
            assert_eq!((files.png, files.svg), (png.into(), svg.into()), "{given}");
        }
        assert_eq!(
            PlotFiles::in_run_dir(Path::new("runs/x")).png,
            Path::new("runs/x/plot.png")
        );
    }
}
