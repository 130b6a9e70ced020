//! Figures drawn with plotters, each written as PNG and SVG (atomically, via a temporary file).
//!
//! Text uses the DejaVu Sans font shipped in `assets/` (registered once), so plots render the
//! same on a machine without system fonts.

use crate::results::{ExperimentResults, Protocol};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Errors from drawing or writing a figure.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PlotError {
    /// The figure file.
    pub path: PathBuf,
    /// What failed.
    pub message: String,
}

type DrawResult = Result<(), String>;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .unwrap_or_else(|_| panic!("the bundled DejaVuSans.ttf is a valid font"));
    });
}

/// Colours for series, chosen to stay distinct in print (Okabe–Ito palette).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// A figure that can draw itself on any plotters backend.
pub trait Figure {
    /// Draws the whole figure on `root`.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult;
}

/// A temporary file removed when dropped (also on an error or a panic while drawing).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Renders one figure to `<stem>.png` and `<stem>.svg` of `size` pixels.
pub fn render<F: Figure>(stem: &Path, size: (u32, u32), fig: &F) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let err = |path: &Path, message: String| PlotError { path: path.to_path_buf(), message };
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    let dir = png.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
    let name = png.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp_png = TempFile(dir.join(format!(".{name}.tmp-{}.png", std::process::id())));
    {
        let root = BitMapBackend::new(&tmp_png.0, size).into_drawing_area();
        fig.draw(root).map_err(|m| err(&png, m))?;
    }
    std::fs::rename(&tmp_png.0, &png).map_err(|e| err(&png, e.to_string()))?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        fig.draw(root).map_err(|m| err(&svg, m))?;
    }
    cft_data::write_atomic(&svg, text.as_bytes()).map_err(|e| err(&svg, e.to_string()))?;
    Ok(vec![png, svg])
}

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Line plot of the mean score against the known-label proportion: one colour per method,
/// solid for the paper protocol, dashed for held-out.
pub struct ScoreVsProportion<'a>(pub &'a ExperimentResults);

impl Figure for ScoreVsProportion<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult {
        score_vs_proportion(root, self.0)
    }
}

/// Grouped bars of per-category Δ (CFT minus its base) at one proportion, one panel per
/// protocol, categories sorted by their mean Δ across methods.
pub struct DeltaBars<'a> {
    /// The results.
    pub results: &'a ExperimentResults,
    /// Which known-label proportion.
    pub proportion: f64,
    /// The base method the CFT rows start from (`AN`).
    pub base: &'a str,
}

impl Figure for DeltaBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult {
        delta_bars(root, self.results, self.proportion, self.base)
    }
}

fn score_vs_proportion<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, res: &ExperimentResults) -> DrawResult {
    root.fill(&WHITE).map_err(s)?;
    let (w, _) = root.dim_in_pixel();
    let (plot_area, legend_area) = root.split_horizontally(w * 70 / 100);
    let values: Vec<f64> =
        res.rows.iter().flat_map(|r| r.cells.iter().filter_map(|c| c.mean)).map(|v| 100.0 * v).collect();
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if values.is_empty() { (0.0, 100.0) } else { ((lo - 2.0).max(0.0), (hi + 2.0).min(100.0)) };
    let xs: Vec<f64> = res.proportions.iter().map(|p| 100.0 * p).collect();
    let (x0, x1) = (xs.first().copied().unwrap_or(0.0) - 3.0, xs.last().copied().unwrap_or(100.0) + 3.0);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(format!("{}: test {} vs known labels", res.dataset, res.metric), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, lo..hi)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_desc("known labels (%)")
        .y_desc(format!("test {} (%)", res.metric))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(s)?;
    let mut methods: Vec<&str> = Vec::new();
    for r in &res.rows {
        if !methods.contains(&r.method.as_str()) {
            methods.push(&r.method);
        }
    }
    let color_of = |m: &str| PALETTE[methods.iter().position(|x| *x == m).unwrap_or(0) % PALETTE.len()];
    for r in &res.rows {
        let color = color_of(&r.method);
        let pts: Vec<(f64, f64)> =
            r.cells.iter().filter_map(|c| c.mean.map(|m| (100.0 * c.proportion, 100.0 * m))).collect();
        let style = color.stroke_width(2);
        match r.protocol {
            Protocol::Paper => chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(s)?,
            Protocol::HeldOut => chart.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style)).map_err(s)?,
        };
        chart
            .draw_series(pts.iter().map(|&(x, y)| match r.protocol {
                Protocol::Paper => Circle::new((x, y), 3, color.filled()).into_dyn(),
                Protocol::HeldOut => TriangleMarker::new((x, y), 4, color.filled()).into_dyn(),
            }))
            .map_err(s)?;
    }
    // The legend sits beside the plot so that it never hides a line.
    let mut y = 60;
    for protocol in [Protocol::Paper, Protocol::HeldOut] {
        let what = match protocol {
            Protocol::Paper => "paper protocol (solid)",
            Protocol::HeldOut => "held-out protocol (dashed)",
        };
        legend_area
            .draw(&Text::new(what.to_string(), (10, y), ("sans-serif", 15).into_font().style(FontStyle::Bold)))
            .map_err(s)?;
        y += 24;
        for r in res.rows.iter().filter(|r| r.protocol == protocol) {
            let color = color_of(&r.method);
            let seg = [(10, y), (50, y)];
            match protocol {
                Protocol::Paper => {
                    legend_area.draw(&PathElement::new(seg.to_vec(), color.stroke_width(2))).map_err(s)?
                }
                Protocol::HeldOut => {
                    for k in 0..4 {
                        legend_area
                            .draw(&PathElement::new(vec![(10 + 11 * k, y), (16 + 11 * k, y)], color.stroke_width(2)))
                            .map_err(s)?;
                    }
                }
            }
            match protocol {
                Protocol::Paper => legend_area.draw(&Circle::new((30, y), 3, color.filled())).map_err(s)?,
                Protocol::HeldOut => legend_area.draw(&TriangleMarker::new((30, y), 4, color.filled())).map_err(s)?,
            }
            legend_area.draw(&Text::new(display_name(&r.method), (58, y - 8), ("sans-serif", 14))).map_err(s)?;
            y += 22;
        }
        y += 16;
    }
    root.present().map_err(s)
}

/// The label of the bar slot at integer position `x` (empty between slots).
fn slot_label(labels: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
        labels[i as usize].clone()
    } else {
        String::new()
    }
}

/// Names as drawn: plotters' glyph layout collides "T-", so `CFT-GA` is drawn `CFT GA`.
pub fn display_name(method: &str) -> String {
    method.replace("CFT-", "CFT ")
}

fn delta_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    res: &ExperimentResults,
    proportion: f64,
    base: &str,
) -> DrawResult {
    root.fill(&WHITE).map_err(s)?;
    let col = res.proportions.iter().position(|p| (p - proportion).abs() < 1e-9).ok_or("proportion not in results")?;
    let protocols = [Protocol::Paper, Protocol::HeldOut];
    let panels = root.split_evenly((protocols.len(), 1));
    for (panel, protocol) in panels.iter().zip(protocols) {
        let Some(base_row) = res.row(base, protocol) else { continue };
        let cft: Vec<_> =
            res.rows.iter().filter(|r| !r.is_base && r.protocol == protocol && r.method.starts_with(base)).collect();
        let c = res.categories.len();
        let delta = |r: &crate::results::MethodRow, k: usize| -> Option<f64> {
            Some(
                100.0
                    * (r.cells.get(col)?.per_category.get(k).copied()??
                        - base_row.cells.get(col)?.per_category.get(k).copied()??),
            )
        };
        let mut order: Vec<usize> = (0..c).collect();
        let mean_delta = |k: usize| cft.iter().filter_map(|r| delta(r, k)).sum::<f64>() / cft.len().max(1) as f64;
        order.sort_by(|&a, &b| mean_delta(b).total_cmp(&mean_delta(a)));
        let all: Vec<f64> = cft.iter().flat_map(|r| (0..c).filter_map(|k| delta(r, k))).collect();
        let top = all.iter().fold(0.5f64, |m, v| m.max(v.abs())) * 1.15;
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!(
                    "{}: per-category Δ{} at {:.0}% known labels, {} protocol",
                    res.dataset,
                    res.metric.trim_start_matches('m'),
                    100.0 * proportion,
                    protocol.label()
                ),
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(c as f64 - 0.5), -top..top)
            .map_err(s)?;
        let names: Vec<String> = order.iter().map(|&k| res.categories[k].clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(c)
            .x_label_formatter(&|x| slot_label(&names, *x))
            .y_desc(format!("Δ{} (points)", res.metric.trim_start_matches('m')))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        let width = 0.8 / cft.len().max(1) as f64;
        for (m, r) in cft.iter().enumerate() {
            let color = PALETTE[(m + 1) % PALETTE.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = order
                .iter()
                .enumerate()
                .filter_map(|(pos, &k)| {
                    let d = delta(r, k)?;
                    let x = pos as f64 - 0.4 + m as f64 * width;
                    Some(Rectangle::new([(x, 0.0), (x + width * 0.9, d)], color.filled()))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(s)?
                .label(display_name(r.method.trim_start_matches(base).trim_start_matches(" + ")))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(-0.5, 0.0), (c as f64 - 0.5, 0.0)], BLACK)))
            .map_err(s)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
    }
    root.present().map_err(s)
}

/// One line of a [`LineChart`].
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points (x, y).
    pub points: Vec<(f64, f64)>,
    /// Dashed instead of solid.
    pub dashed: bool,
    /// Palette index.
    pub color: usize,
}

/// A titled line chart with axis descriptions and a legend beside the plot.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title.
    pub title: String,
    /// X axis description (with unit).
    pub x_desc: String,
    /// Y axis description (with unit).
    pub y_desc: String,
    /// The lines.
    pub series: Vec<Series>,
}

impl LineChart {
    fn draw_on<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let (w, _) = area.dim_in_pixel();
        let (plot_area, legend_area) = area.split_horizontally(w * 68 / 100);
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let (xpad, ypad) = (((x1 - x0) * 0.04).max(1e-9), ((y1 - y0) * 0.08).max(1e-3));
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(&self.title, ("sans-serif", 19))
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d((x0 - xpad)..(x1 + xpad), (y0 - ypad)..(y1 + ypad))
            .map_err(s)?;
        let xfmt = |v: &f64| if x1 - x0 >= 20.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        let yfmt = |v: &f64| if y1 - y0 >= 5.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        for ser in &self.series {
            let style = PALETTE[ser.color % PALETTE.len()].stroke_width(2);
            if ser.dashed {
                chart.draw_series(DashedLineSeries::new(ser.points.clone(), 6, 4, style)).map_err(s)?;
            } else {
                chart.draw_series(LineSeries::new(ser.points.clone(), style)).map_err(s)?;
            }
        }
        let mut y = 50;
        for ser in &self.series {
            let color = PALETTE[ser.color % PALETTE.len()];
            if ser.dashed {
                for k in 0..3 {
                    legend_area
                        .draw(&PathElement::new(vec![(8 + 10 * k, y), (14 + 10 * k, y)], color.stroke_width(2)))
                        .map_err(s)?;
                }
            } else {
                legend_area.draw(&PathElement::new(vec![(8, y), (34, y)], color.stroke_width(2))).map_err(s)?;
            }
            legend_area.draw(&Text::new(display_name(&ser.label), (42, y - 8), ("sans-serif", 13))).map_err(s)?;
            y += 21;
        }
        Ok(())
    }
}

impl Figure for LineChart {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(s)?;
        self.draw_on(&root)?;
        root.present().map_err(s)
    }
}

/// Several line charts stacked vertically.
#[derive(Debug, Clone)]
pub struct Stacked(pub Vec<LineChart>);

impl Figure for Stacked {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(s)?;
        for (area, chart) in root.split_evenly((self.0.len().max(1), 1)).iter().zip(&self.0) {
            chart.draw_on(area)?;
        }
        root.present().map_err(s)
    }
}

/// Horizontal-label bar chart on a log₁₀ value axis (for timings spanning decades).
#[derive(Debug, Clone)]
pub struct LogBars {
    /// Title.
    pub title: String,
    /// Value axis description (with unit).
    pub y_desc: String,
    /// Bars: label, value (> 0), palette index.
    pub bars: Vec<(String, f64, usize)>,
}

impl Figure for LogBars {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(s)?;
        let lo = self.bars.iter().map(|b| b.1).fold(f64::MAX, f64::min).max(1e-6) / 2.0;
        let hi = self.bars.iter().map(|b| b.1).fold(f64::MIN, f64::max).max(lo * 4.0) * 2.0;
        let n = self.bars.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 19))
            .margin(12)
            .x_label_area_size(80)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())
            .map_err(s)?;
        let labels: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| slot_label(&labels, *x))
            .y_desc(self.y_desc.as_str())
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        chart
            .draw_series(self.bars.iter().enumerate().map(|(i, (_, v, c))| {
                Rectangle::new([(i as f64 - 0.35, lo), (i as f64 + 0.35, *v)], PALETTE[*c % PALETTE.len()].filled())
            }))
            .map_err(s)?;
        chart
            .draw_series(
                self.bars.iter().enumerate().map(|(i, (_, v, _))| {
                    Text::new(format!("{v:.1}"), (i as f64 - 0.2, *v * 1.25), ("sans-serif", 13))
                }),
            )
            .map_err(s)?;
        root.present().map_err(s)
    }
}

/// Known positives and negatives per category (log scale), most positives first; with many
/// categories the 30 most and 30 least frequent are shown. Categories CFT would skip are marked
/// with a `×` under their bars.
#[derive(Debug, Clone)]
pub struct CategoryCounts {
    /// Title.
    pub title: String,
    /// Per category: name, positives, negatives, skipped by CFT.
    pub counts: Vec<(String, usize, usize, bool)>,
}

impl Figure for CategoryCounts {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE).map_err(s)?;
        let mut rows = self.counts.clone();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
        if rows.len() > 60 {
            let tail = rows.split_off(rows.len() - 30);
            rows.truncate(30);
            rows.extend(tail);
        }
        let n = rows.len().max(1);
        let hi = rows.iter().map(|r| r.1.max(r.2)).max().unwrap_or(1).max(1) as f64 * 2.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 19))
            .margin(12)
            .x_label_area_size(110)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (0.5f64..hi).log_scale())
            .map_err(s)?;
        let labels: Vec<String> = rows.iter().map(|r| if r.3 { format!("× {}", r.0) } else { r.0.clone() }).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| slot_label(&labels, *x))
            .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .y_desc("known labels (log scale)")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        for (series, offset, color, label) in [(1usize, -0.2f64, 0usize, "positives"), (2, 0.2, 1, "negatives")] {
            chart
                .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                    let v = if series == 1 { r.1 } else { r.2 };
                    (v > 0).then(|| {
                        Rectangle::new(
                            [(i as f64 + offset - 0.18, 0.5), (i as f64 + offset + 0.18, v as f64)],
                            PALETTE[color].filled(),
                        )
                    })
                }))
                .map_err(s)?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], PALETTE[color].filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
        root.present().map_err(s)
    }
}
