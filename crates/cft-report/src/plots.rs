//! Figures drawn with plotters, each written as PNG and SVG (atomically, via a temporary file).
//!
//! Text uses the DejaVu Sans font shipped in `assets/` (registered once), so plots render the
//! same on a machine without system fonts.

use cft_results::{ExperimentResults, Protocol};
use plotters::coord::Shift;
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters_backend::{BackendCoord, DrawingErrorKind};
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
        plotters::style::register_font("sans-serif", FontStyle::Normal, crate::glyphs::FONT_BYTES)
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

/// Point markers, so that series stay apart where their lines coincide (and in grey print).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// ●
    Circle,
    /// ■
    Square,
    /// ▲
    Triangle,
    /// ◆
    Diamond,
    /// ✕
    Cross,
    /// ▶ (marks a curve that goes on beyond its last point; not in [`MARKERS`])
    Arrow,
}

/// The markers in the order series get them; 5 is coprime to the palette's 7 colours, so
/// series `i` gets colour `i % 7` and marker `i % 5`: 35 distinct pairs.
pub const MARKERS: [Marker; 5] = [Marker::Circle, Marker::Square, Marker::Triangle, Marker::Diamond, Marker::Cross];

/// One marker at `at` (in the coordinates of whatever it is drawn on: a chart's data
/// coordinates or a legend's pixels), about `size` pixels in half-width, filled or as an outline.
#[derive(Debug, Clone)]
pub struct MarkerAt<C> {
    /// Where.
    pub at: C,
    /// Which shape.
    pub kind: Marker,
    /// Half-width in pixels.
    pub size: i32,
    /// Colour.
    pub color: RGBColor,
    /// Filled, or an outline.
    pub filled: bool,
}

/// A marker element (see [`MarkerAt`]).
pub fn marker_at<C>(kind: Marker, at: C, size: i32, color: RGBColor, filled: bool) -> MarkerAt<C> {
    MarkerAt { at, kind, size, color, filled }
}

impl<'a, C> PointCollection<'a, C> for &'a MarkerAt<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for MarkerAt<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut points: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = points.next() else { return Ok(()) };
        let r = self.size;
        let style = if self.filled { self.color.filled() } else { self.color.stroke_width(2) };
        let shape = |backend: &mut DB, pts: Vec<(i32, i32)>| {
            let abs: Vec<(i32, i32)> = pts.iter().map(|(dx, dy)| (x + dx, y + dy)).collect();
            if self.filled {
                backend.fill_polygon(abs, &style)
            } else {
                let mut closed = abs.clone();
                closed.push(abs[0]);
                backend.draw_path(closed, &style)
            }
        };
        match self.kind {
            Marker::Circle => backend.draw_circle((x, y), r as u32, &style, self.filled),
            Marker::Square => shape(backend, vec![(-r, -r), (r, -r), (r, r), (-r, r)]),
            Marker::Triangle => shape(backend, vec![(0, -r - 1), (r + 1, r), (-r - 1, r)]),
            Marker::Diamond => shape(backend, vec![(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)]),
            Marker::Cross => {
                let st = self.color.stroke_width(if self.filled { 3 } else { 2 });
                backend.draw_path(vec![(x - r, y - r), (x + r, y + r)], &st)?;
                backend.draw_path(vec![(x - r, y + r), (x + r, y - r)], &st)
            }
            Marker::Arrow => shape(backend, vec![(2, -r - 3), (2 * r + 6, 0), (2, r + 3)]),
        }
    }
}

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
        let root = crate::glyphs::GlyphText(BitMapBackend::new(&tmp_png.0, size)).into_drawing_area();
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
    let (plot_area, legend_area) = root.split_horizontally(w * 68 / 100);
    let values: Vec<f64> =
        res.rows.iter().flat_map(|r| r.cells.iter().filter_map(|c| c.mean)).map(|v| 100.0 * v).collect();
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if values.is_empty() { (0.0, 100.0) } else { ((lo - 2.0).max(0.0), (hi + 2.0).min(100.0)) };
    let split = res.evaluation().trim_end_matches(" split");
    let xs: Vec<f64> = res.proportions.iter().map(|p| 100.0 * p).collect();
    let (x0, x1) = (xs.first().copied().unwrap_or(0.0) - 3.0, xs.last().copied().unwrap_or(100.0) + 3.0);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(format!("{}: {split} {} vs known labels", res.dataset, res.metric), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, lo..hi)
        .map_err(s)?;
    chart
        .configure_mesh()
        .x_desc("known labels (%)")
        .y_desc(format!("{split} {} (%)", res.metric))
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
    // Each method has its own colour and marker; the protocol is the line (solid / dashed) and
    // the marker's fill (filled / outline). Base rows are drawn first and wider, so a CFT line
    // that coincides with its base (CFT-GA on AN) leaves the base visible around it.
    let style_of = |m: &str| {
        let i = methods.iter().position(|x| *x == m).unwrap_or(0);
        (PALETTE[i % PALETTE.len()], MARKERS[i % MARKERS.len()])
    };
    let mut order: Vec<&cft_results::MethodRow> = res.rows.iter().collect();
    order.sort_by_key(|r| !r.is_base);
    for r in order {
        let (color, mk) = style_of(&r.method);
        let pts: Vec<(f64, f64)> =
            r.cells.iter().filter_map(|c| c.mean.map(|m| (100.0 * c.proportion, 100.0 * m))).collect();
        let style = color.stroke_width(if r.is_base { 5 } else { 2 });
        match r.protocol {
            Protocol::Paper => chart.draw_series(LineSeries::new(pts.clone(), style)).map_err(s)?,
            Protocol::HeldOut => chart.draw_series(DashedLineSeries::new(pts.clone(), 6, 4, style)).map_err(s)?,
        };
        let filled = r.protocol == Protocol::Paper;
        chart.draw_series(pts.iter().map(|&p| marker_at(mk, p, 4, color, filled))).map_err(s)?;
    }
    // The legend sits beside the plot so that it never hides a line; it says what each
    // protocol selects on.
    let mut y = 40;
    for protocol in [Protocol::Paper, Protocol::HeldOut] {
        let (head, how) = match protocol {
            Protocol::Paper => {
                ("paper protocol (solid, filled)", format!("CFT epochs selected on the {}", res.evaluation()))
            }
            Protocol::HeldOut => {
                ("held-out protocol (dashed, open)", "selected on 20% held-out training images".into())
            }
        };
        legend_area
            .draw(&Text::new(head.to_string(), (8, y), ("sans-serif", 15).into_font().style(FontStyle::Bold)))
            .map_err(s)?;
        y += 19;
        legend_area.draw(&Text::new(how, (8, y), ("sans-serif", 13).into_font())).map_err(s)?;
        y += 24;
        for r in res.rows.iter().filter(|r| r.protocol == protocol) {
            let (color, mk) = style_of(&r.method);
            let width = if r.is_base { 5 } else { 2 };
            match protocol {
                Protocol::Paper => {
                    legend_area.draw(&PathElement::new(vec![(10, y), (50, y)], color.stroke_width(width))).map_err(s)?
                }
                Protocol::HeldOut => {
                    for k in 0..4 {
                        legend_area
                            .draw(&PathElement::new(
                                vec![(10 + 11 * k, y), (16 + 11 * k, y)],
                                color.stroke_width(width),
                            ))
                            .map_err(s)?;
                    }
                }
            }
            legend_area.draw(&marker_at(mk, (30, y), 4, color, protocol == Protocol::Paper)).map_err(s)?;
            legend_area.draw(&Text::new(r.method.clone(), (58, y - 8), ("sans-serif", 14))).map_err(s)?;
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

fn delta_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    res: &ExperimentResults,
    proportion: f64,
    base: &str,
) -> DrawResult {
    root.fill(&WHITE).map_err(s)?;
    let col = res.proportions.iter().position(|p| (p - proportion).abs() < 1e-9).ok_or("proportion not in results")?;
    let protocols = [Protocol::Paper, Protocol::HeldOut];
    let c = res.categories.len();
    let cft_rows = |protocol: Protocol| -> Vec<&cft_results::MethodRow> {
        res.rows.iter().filter(|r| !r.is_base && r.protocol == protocol && r.method.starts_with(base)).collect()
    };
    let delta = |r: &cft_results::MethodRow, k: usize| -> Option<f64> {
        let base_row = res.row(base, r.protocol)?;
        Some(
            100.0
                * (r.cells.get(col)?.per_category.get(k).copied()??
                    - base_row.cells.get(col)?.per_category.get(k).copied()??),
        )
    };
    // One category order for both panels (by the mean Δ over every CFT row of both protocols),
    // so that a category sits in the same slot in each.
    let all_rows: Vec<&cft_results::MethodRow> = protocols.iter().flat_map(|&p| cft_rows(p)).collect();
    let mean_delta = |k: usize| {
        let v: Vec<f64> = all_rows.iter().filter_map(|r| delta(r, k)).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|&a, &b| mean_delta(b).total_cmp(&mean_delta(a)).then(a.cmp(&b)));
    let names: Vec<String> = order.iter().map(|&k| res.categories[k].clone()).collect();
    let panels = root.split_evenly((protocols.len(), 1));
    for (panel, protocol) in panels.iter().zip(protocols) {
        if res.row(base, protocol).is_none() {
            continue;
        }
        let cft = cft_rows(protocol);
        let all: Vec<f64> = cft.iter().flat_map(|r| (0..c).filter_map(|k| delta(r, k))).collect();
        // The axis spans the data and zero, nothing more: under the paper protocol no Δ can be
        // negative (the epoch is selected on the test split itself), and the axis shows that.
        let (lo, hi) = delta_axis(&all);
        let mut chart = ChartBuilder::on(panel)
            .caption(delta_caption(res, proportion, protocol), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(c as f64 - 0.5), lo..hi)
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(c)
            .x_label_formatter(&|x| slot_label(&names, *x))
            .y_label_formatter(&|y| {
                let y = if y.abs() < 1e-9 { 0.0 } else { *y };
                if hi - lo < 2.0 {
                    format!("{y:.2}")
                } else {
                    format!("{y:.1}")
                }
            })
            .y_desc(format!("Δ{} (points)", res.metric.trim_start_matches('m')))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        let width = 0.8 / cft.len().max(1) as f64;
        for (m, r) in cft.iter().enumerate() {
            let color = PALETTE[(m + 1) % PALETTE.len()];
            let deltas: Vec<Option<f64>> = order.iter().map(|&k| delta(r, k)).collect();
            let bars: Vec<Rectangle<(f64, f64)>> = deltas
                .iter()
                .enumerate()
                .filter_map(|(pos, d)| {
                    let d = (*d)?;
                    let x = pos as f64 - 0.4 + m as f64 * width;
                    Some(Rectangle::new([(x, 0.0), (x + width * 0.9, d)], color.filled()))
                })
                .collect();
            // An exact zero has no bar: a short stroke on the zero line shows it was measured.
            let zeros: Vec<PathElement<(f64, f64)>> = deltas
                .iter()
                .enumerate()
                .filter(|(_, d)| **d == Some(0.0))
                .map(|(pos, _)| {
                    let x = pos as f64 - 0.4 + m as f64 * width;
                    PathElement::new(vec![(x, 0.0), (x + width * 0.9, 0.0)], color.stroke_width(4))
                })
                .collect();
            chart.draw_series(zeros).map_err(s)?;
            // A method that changed nothing has no bars: say so rather than show an empty entry.
            let name = r.method.trim_start_matches(base).trim_start_matches(" + ");
            let label = if deltas.iter().flatten().all(|d| *d == 0.0) {
                format!("{name}: no change in any category (strokes at 0)")
            } else {
                name.to_string()
            };
            chart
                .draw_series(bars)
                .map_err(s)?
                .label(label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(-0.5, 0.0), (c as f64 - 0.5, 0.0)], BLACK)))
            .map_err(s)?;
        chart
            .configure_series_labels()
            .position(emptiest_corner(&bar_extents(&cft, &order, &delta), c, (lo, hi)))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(s)?;
    }
    root.present().map_err(s)
}

/// The caption of one protocol's panel of [`delta_bars`].
fn delta_caption(res: &ExperimentResults, proportion: f64, protocol: Protocol) -> String {
    match &res.real_labels {
        Some(_) => format!(
            "{}: per-category Δ{}, real partial labels ({:.0}% known), {} protocol",
            res.dataset,
            res.metric.trim_start_matches('m'),
            100.0 * proportion,
            protocol.label()
        ),
        None => format!(
            "{}: per-category Δ{} at {:.0}% known labels, {} protocol",
            res.dataset,
            res.metric.trim_start_matches('m'),
            100.0 * proportion,
            protocol.label()
        ),
    }
}

/// The Δ axis of a panel: the data and zero with a margin; an all-zero panel still gets a
/// readable ±0.5-point axis.
fn delta_axis(all: &[f64]) -> (f64, f64) {
    let (lo, hi) = all.iter().fold((0.0f64, 0.0f64), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.08).max(if hi - lo < 1e-12 { 1.0 } else { 0.1 });
    (if lo < 0.0 { lo - pad } else { -pad * 0.5 }, if hi > 0.0 { hi + pad } else { pad * 0.5 })
}

/// Every drawn bar as (slot, low, high) in data units.
fn bar_extents(
    rows: &[&cft_results::MethodRow],
    order: &[usize],
    delta: &dyn Fn(&cft_results::MethodRow, usize) -> Option<f64>,
) -> Vec<(usize, f64, f64)> {
    rows.iter()
        .flat_map(|r| {
            order.iter().enumerate().filter_map(move |(pos, &k)| delta(r, k).map(|d| (pos, d.min(0.0), d.max(0.0))))
        })
        .collect()
}

/// The corner where a legend (about 45% of the slots wide, a quarter of the height tall)
/// covers the fewest bars; upper right on a tie.
fn emptiest_corner(bars: &[(usize, f64, f64)], slots: usize, (lo, hi): (f64, f64)) -> SeriesLabelPosition {
    let span = hi - lo;
    let wide = (slots as f64 * 0.45).ceil() as usize;
    let corners = [
        (SeriesLabelPosition::UpperRight, false, true),
        (SeriesLabelPosition::UpperLeft, true, true),
        (SeriesLabelPosition::LowerRight, false, false),
        (SeriesLabelPosition::LowerLeft, true, false),
    ];
    let hits = |left: bool, upper: bool| {
        let (y0, y1) = if upper { (hi - 0.25 * span, hi) } else { (lo, lo + 0.25 * span) };
        bars.iter()
            .filter(|&&(pos, a, b)| (if left { pos < wide } else { pos + wide >= slots }) && b > y0 && a < y1)
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, left, upper)| hits(left, upper))
        .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
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
    /// A marker on the points (on every point of short series, on about ten of long ones).
    pub marker: Option<Marker>,
    /// The run behind the series was stopped by the epoch limit, not by patience (it was still
    /// improving): an arrow marks its end and the legend says so.
    pub open_end: bool,
    /// An interval band around the line: (x, low, high), drawn translucent under it.
    pub band: Vec<(f64, f64, f64)>,
    /// Markers only, no line (a strip plot of individual values).
    pub points_only: bool,
}

impl Series {
    /// A plain solid line in palette colour `color`.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Self {
        Self {
            label: label.into(),
            points,
            dashed: false,
            color,
            marker: None,
            open_end: false,
            band: Vec::new(),
            points_only: false,
        }
    }
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
    /// Categorical x axis: the points' x are slot indices 0, 1, … labelled by these (evenly
    /// spaced values of a varied parameter); empty: a numeric axis.
    pub x_slots: Vec<String>,
}

impl LineChart {
    fn draw_on<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let (w, _) = area.dim_in_pixel();
        let (plot_area, legend_area) = area.split_horizontally(w * 68 / 100);
        // Undefined values (NaN, ±∞: a category without positives, an empty cell) are gaps:
        // left out of the axis ranges, lines broken there, and counted in the legend.
        let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let band_ok = |b: &(f64, f64, f64)| b.0.is_finite() && b.1.is_finite() && b.2.is_finite();
        let gaps: usize = self.series.iter().map(|s| s.points.iter().filter(|p| !finite(p)).count()).sum();
        let bands = self
            .series
            .iter()
            .flat_map(|s| s.band.iter().filter(|b| band_ok(b)).flat_map(|&(x, lo, hi)| [(x, lo), (x, hi)]));
        let pts = self.series.iter().flat_map(|s| s.points.iter().copied().filter(finite)).chain(bands);
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        // Every value the same (a CFT that changed nothing): an axis of ±1 around it, whose
        // ticks read apart, not ±0.001 with every label rounded to the same text.
        let flat = y1 - y0 < 1e-9;
        let yspan = if flat { 2.0 * (0.1 * y0.abs()).max(1.0) } else { y1 - y0 };
        let ypad = if flat { yspan / 2.0 } else { ((y1 - y0) * 0.08).max(1e-3) };
        let xpad = if self.x_slots.is_empty() { ((x1 - x0) * 0.04).max(1e-9) } else { 0.4 };
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(&self.title, ("sans-serif", 19))
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d((x0 - xpad)..(x1 + xpad), (y0 - ypad)..(y1 + ypad))
            .map_err(s)?;
        let xfmt = |v: &f64| match x1 - x0 {
            _ if !self.x_slots.is_empty() => slot_label(&self.x_slots, *v),
            r if r >= 20.0 => format!("{v:.0}"),
            r if r >= 2.0 => format!("{v:.1}"),
            _ => format!("{v:.2}"),
        };
        let n_labels = if self.x_slots.is_empty() { 10 } else { self.x_slots.len() };
        let yfmt = |v: &f64| {
            // A tick at zero reads "0", never "-0.00" from a float a hair below it.
            let v = if v.abs() < 1e-9 { 0.0 } else { *v };
            // Enough decimals that neighbouring ticks never read the same (a span under 10 can
            // have ticks 0.5 apart).
            match yspan {
                r if r >= 10.0 => format!("{v:.0}"),
                r if r >= 0.2 => format!("{v:.2}"),
                _ => format!("{v:.3}"),
            }
        };
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc(self.y_desc.as_str())
            .x_labels(n_labels)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(s)?;
        for ser in &self.series {
            let color = PALETTE[ser.color % PALETTE.len()];
            for run in ser.band.split(|b| !band_ok(b)).filter(|r| r.len() > 1) {
                let mut outline: Vec<(f64, f64)> = run.iter().map(|&(x, _, hi)| (x, hi)).collect();
                outline.extend(run.iter().rev().map(|&(x, lo, _)| (x, lo)));
                chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.15).filled()))).map_err(s)?;
            }
        }
        for ser in &self.series {
            let color = PALETTE[ser.color % PALETTE.len()];
            let style = color.stroke_width(2);
            for run in ser.points.split(|p| !finite(p)).filter(|r| !r.is_empty()) {
                if ser.points_only {
                    // no line
                } else if ser.dashed {
                    chart.draw_series(DashedLineSeries::new(run.to_vec(), 6, 4, style)).map_err(s)?;
                } else {
                    chart.draw_series(LineSeries::new(run.to_vec(), style)).map_err(s)?;
                }
            }
            let points: Vec<(f64, f64)> = ser.points.iter().copied().filter(finite).collect();
            if let Some(mk) = ser.marker {
                // Every point of a short series; on a long one, the first point in each tenth
                // of the x axis, so that markers are spread evenly whatever the series' length.
                let tenth = |x: f64| ((x - x0) / (x1 - x0).max(1e-12) * 10.0).floor() as i64;
                let marked: Vec<(f64, f64)> = if points.len() <= 20 || ser.points_only {
                    points.clone()
                } else {
                    let mut last = None;
                    points.iter().copied().filter(|p| last.replace(tenth(p.0)) != Some(tenth(p.0))).collect()
                };
                chart.draw_series(marked.into_iter().map(|p| marker_at(mk, p, 4, color, true))).map_err(s)?;
            }
            if let (true, Some(&end)) = (ser.open_end, points.last()) {
                chart.draw_series(std::iter::once(marker_at(Marker::Arrow, end, 4, color, true))).map_err(s)?;
            }
        }
        self.draw_legend(&legend_area, gaps)
    }

    /// The legend beside the plot: each series' line sample, marker and label, its open-end
    /// note, and how many undefined values were left out.
    fn draw_legend<DB: DrawingBackend>(&self, legend_area: &DrawingArea<DB, Shift>, gaps: usize) -> DrawResult {
        let mut y = 50;
        for ser in &self.series {
            let color = PALETTE[ser.color % PALETTE.len()];
            if ser.points_only {
                // the marker alone
            } else if ser.dashed {
                for k in 0..3 {
                    legend_area
                        .draw(&PathElement::new(vec![(8 + 10 * k, y), (14 + 10 * k, y)], color.stroke_width(2)))
                        .map_err(s)?;
                }
            } else {
                legend_area.draw(&PathElement::new(vec![(8, y), (34, y)], color.stroke_width(2))).map_err(s)?;
            }
            if let Some(mk) = ser.marker {
                legend_area.draw(&marker_at(mk, (21, y), 4, color, true)).map_err(s)?;
            }
            legend_area.draw(&Text::new(ser.label.clone(), (42, y - 8), ("sans-serif", 13))).map_err(s)?;
            y += 21;
            if ser.open_end {
                // A note under the series' own label (indented, grey, no line sample), so that
                // it does not read as another series.
                legend_area.draw(&marker_at(Marker::Arrow, (42, y - 6), 3, color, true)).map_err(s)?;
                let grey = ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90));
                legend_area.draw(&Text::new("stopped by the epoch limit", (58, y - 10), grey)).map_err(s)?;
                y += 19;
            }
        }
        if gaps > 0 {
            let grey = ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90));
            let note = format!("{gaps} undefined value{} not drawn (gaps)", if gaps == 1 { "" } else { "s" });
            legend_area.draw(&Text::new(note, (8, y - 4), grey)).map_err(s)?;
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
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo..hi).log_scale())
            .map_err(s)?;
        let labels: Vec<String> = self.bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| slot_label(&labels, *x))
            .y_label_formatter(&|y| if *y >= 1.0 { format!("{y:.0}") } else { format!("{y}") })
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

/// Known positives and negatives per category on a linear axis, most positives first; with
/// many categories the 30 most and 30 least frequent are shown. Counts are written on the bars
/// (up to 30 categories); categories CFT would skip are marked `×` (explained beside the plot).
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
        let omitted = rows.len().saturating_sub(60);
        if omitted > 0 {
            let tail = rows.split_off(rows.len() - 30);
            rows.truncate(30);
            rows.extend(tail);
        }
        let n = rows.len().max(1);
        let top = rows.iter().map(|r| r.1.max(r.2)).max().unwrap_or(1).max(1) as f64;
        let (w, _) = root.dim_in_pixel();
        let (main, side) = root.split_horizontally(w.saturating_sub(230));
        // Room under the axis for the longest (rotated) category name, no more.
        let longest = rows.iter().map(|r| r.0.chars().count() + if r.3 { 2 } else { 0 }).max().unwrap_or(4);
        // Few categories: names side by side; many: turned a quarter.
        let rotate = n > 12;
        let label_area = if rotate { (longest as u32 * 6 + 16).clamp(30, 150) } else { 34 };
        let mut chart = ChartBuilder::on(&main)
            .caption(&self.title, ("sans-serif", 19))
            .margin(12)
            .x_label_area_size(label_area)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top * 1.12)
            .map_err(s)?;
        let labels: Vec<String> = rows.iter().map(|r| if r.3 { format!("× {}", r.0) } else { r.0.clone() }).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| slot_label(&labels, *x))
            // `label_style` sets both axes: it must come before the x-specific style.
            .label_style(("sans-serif", 12))
            .x_label_style(if rotate {
                ("sans-serif", 11).into_font().transform(FontTransform::Rotate90)
            } else {
                ("sans-serif", 13).into_font()
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc("known labels")
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(s)?;
        for (series, offset, color) in [(1usize, -0.2f64, 0usize), (2, 0.2, 1)] {
            let value = |r: &(String, usize, usize, bool)| if series == 1 { r.1 } else { r.2 };
            chart
                .draw_series(rows.iter().enumerate().map(|(i, r)| {
                    Rectangle::new(
                        [(i as f64 + offset - 0.18, 0.0), (i as f64 + offset + 0.18, value(r) as f64)],
                        PALETTE[color].filled(),
                    )
                }))
                .map_err(s)?;
            if n <= 30 {
                chart
                    .draw_series(rows.iter().enumerate().map(|(i, r)| {
                        Text::new(
                            value(r).to_string(),
                            (i as f64 + offset - 0.17, value(r) as f64 + top * 0.035),
                            ("sans-serif", 11),
                        )
                    }))
                    .map_err(s)?;
            }
        }
        // The legend and the notes beside the plot, where they cover nothing.
        let mut y = 50;
        for (label, color) in [("known positives", 0usize), ("known negatives", 1)] {
            side.draw(&Rectangle::new([(10, y - 6), (24, y + 6)], PALETTE[color].filled())).map_err(s)?;
            side.draw(&Text::new(label, (32, y - 7), ("sans-serif", 13))).map_err(s)?;
            y += 22;
        }
        y += 10;
        let mut notes = Vec::new();
        if rows.iter().any(|r| r.3) {
            notes.extend(["× before a name: CFT skips", "this category (no known", "positive or negative)"]);
        }
        let shown_note;
        if omitted > 0 {
            shown_note = format!("{omitted} categories between the 30",);
            notes.extend([shown_note.as_str(), "most and 30 least frequent", "are not shown"]);
        }
        for line in notes {
            side.draw(&Text::new(line, (10, y), ("sans-serif", 12))).map_err(s)?;
            y += 17;
        }
        root.present().map_err(s)
    }
}
