//! PNG plots for reports: the confusion matrix as a heatmap, training curves, and bar
//! charts comparing methods.
//!
//! Drawn with plotters into an RGB buffer and encoded with the `image` crate (so plotters
//! needs neither its own image encoder nor system fonts). Text uses DejaVu Sans, committed
//! as `assets/fonts/DejaVuSans.ttf` (Bitstream Vera licence with public-domain DejaVu
//! changes, `assets/fonts/LICENSE-DejaVu.txt`) and compiled in, so a plot looks the same on
//! every machine, including ones without fontconfig; `glyphs.rs` says why plotters' own
//! text rendering is bypassed. Files are written atomically: a reader never sees half
//! a PNG.
//!
//! Image sizes are known before drawing: [`confusion_size`] (from the class count and the
//! longest name), [`CURVES_SIZE`], [`bars_size`] (from the bar count). Long names are
//! shortened with an ellipsis to fit.

use std::path::Path;
use std::sync::OnceLock;

use ab_glyph::FontRef;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::glyphs::{GlyphBackend, text_size};
use super::metrics::ConfusionMatrix;
use crate::error::{Error, Result};

/// The area every plot draws on.
type Area<'a> = DrawingArea<GlyphBackend<'static, BitMapBackend<'a>>, Shift>;

/// Size of [`plot_curves`]' image, `(width, height)` in pixels.
pub const CURVES_SIZE: (u32, u32) = (960, 600);

/// Colours of successive series and bars (Tableau 10: distinct, and readable in print).
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// Text sizes (pixels of line height).
const TITLE_SIZE: u32 = 26;
const AXIS_TITLE_SIZE: u32 = 19;
const TICK_SIZE: u32 = 16;
const LABEL_SIZE: u32 = 17;

/// The compiled-in font, parsed once.
fn dejavu() -> Result<&'static FontRef<'static>> {
    static PARSED: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    PARSED
        .get_or_init(|| FontRef::try_from_slice(crate::util::FONT).ok())
        .as_ref()
        .ok_or_else(|| {
            Error::Input(
                "the compiled-in plot font (assets/fonts/DejaVuSans.ttf) does not parse".into(),
            )
        })
}

/// A text style of `size` pixels (the family name is not looked up: `GlyphBackend`
/// draws all text in DejaVu Sans).
fn font(size: u32) -> FontDesc<'static> {
    ("sans-serif", size).into_font()
}

/// An error drawing the plot bound for `path`.
fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!("drawing the plot failed: {e}")),
    )
}

/// Renders `size` pixels with `draw` on a white canvas and writes them to `path` as PNG.
fn render(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Result<()>) -> Result<()> {
    let font = dejavu()?;
    let mut buffer = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let backend = GlyphBackend::new(BitMapBackend::with_buffer(&mut buffer, size), font);
        let root = backend.into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
        draw(&root)?;
        root.present().map_err(|e| draw_error(path, e))?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, buffer)
        .expect("the buffer was allocated for this size");
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| draw_error(path, e))?;
    crate::util::write_atomic(path, &png)
}

/// Width in pixels of `text` at `size` (0 if the font does not parse; [`render`] reports
/// that).
fn text_width(text: &str, size: u32) -> u32 {
    dejavu().map_or(0, |f| text_size(f, text, size as f64).0.ceil() as u32)
}

/// `text`, shortened with an ellipsis until it is at most `max` pixels wide at `size`.
fn fit(text: &str, size: u32, max: u32) -> String {
    if text_width(text, size) <= max {
        return text.to_string();
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let short: String = chars.iter().collect::<String>().trim_end().to_string() + "…";
        if text_width(&short, size) <= max {
            return short;
        }
    }
    "…".into()
}

/// `text` broken at spaces into at most `max_lines` lines of at most `max` pixels at
/// `size`; `None` if it does not fit so.
fn wrap(text: &str, size: u32, max: u32, max_lines: usize) -> Option<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), size) <= max => {
                line.push(' ');
                line.push_str(word);
            }
            _ => {
                if text_width(word, size) > max {
                    return None;
                }
                lines.push(word.to_string());
            }
        }
    }
    (lines.len() <= max_lines).then_some(lines)
}

/// A number with about four significant digits and no trailing zeros: `61.52`, `0.6152`,
/// `1235`, `0.00015`; below 1e-5 or from 1e7 in scientific notation (`2.5e-7`).
fn compact(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-5..7).contains(&magnitude) {
        let sci = format!("{v:.2e}");
        let (mantissa, exponent) = sci.split_once('e').expect("{:e} writes an exponent");
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exponent}");
    }
    let decimals = (3 - magnitude).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    // Rounding can leave "-0".
    if s == "-0" { "0".into() } else { s }
}

/// A tick label on an axis spanning `range`: [`compact`], with values a billionth of the
/// span from zero written as 0 (plotters computes ticks in floating point, so the zero
/// tick of `-0.3..0.8` arrives as -5.55e-17).
fn tick(v: f64, range: &std::ops::Range<f64>) -> String {
    let span = (range.end - range.start).abs();
    compact(if v.abs() < span * 1e-9 { 0.0 } else { v })
}

/// Widest tick label plotters may write on a value axis spanning `lo..hi`. Plotters puts
/// at most 10 labels at multiples of a step of 1, 2 or 5 times a power of ten; the labels
/// of that step are measured.
fn tick_label_width(lo: f64, hi: f64) -> u32 {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return text_width(&compact(lo), TICK_SIZE);
    }
    let raw = span / 10.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil();
    // At most ~11 ticks; the bound also ends the loop where `k + 1.0 == k` (huge values).
    (0..12)
        .map(|i| (first + i as f64) * step)
        .take_while(|&v| v <= hi)
        .map(|v| text_width(&compact(v), TICK_SIZE))
        .max()
        .unwrap_or_else(|| text_width(&compact(lo), TICK_SIZE))
}

/// Room left of a chart for tick labels, tick marks and the rotated axis title.
fn y_label_area(range: &std::ops::Range<f64>) -> u32 {
    tick_label_width(range.start, range.end) + 14 + AXIS_TITLE_SIZE + 10
}

/// Matplotlib's "Blues" colour map at `t` in `[0, 1]` (white to dark blue).
fn blues(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (247, 251, 255),
        (222, 235, 247),
        (198, 219, 239),
        (158, 202, 225),
        (107, 174, 214),
        (66, 146, 198),
        (33, 113, 181),
        (8, 81, 156),
        (8, 48, 107),
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Room for the title above the heatmap.
const TITLE_AREA: u32 = 56;
/// Room for an axis title ("true class", "predicted class").
const AXIS_TITLE_AREA: u32 = 34;
/// Room for the colour bar, its ticks and its caption right of the heatmap.
const COLOUR_BAR_AREA: u32 = 124;
/// Outer margin.
const MARGIN: u32 = 12;
/// Longest class name drawn, in pixels; longer ones are shortened.
const NAME_MAX: u32 = 200;

/// Where everything of a confusion heatmap goes.
struct ConfusionLayout {
    /// Image size.
    size: (u32, u32),
    /// Cell side: large for the emotion sets (7-11 classes), down to 2 px for
    /// Kinetics-400 so that the grid stays under ~1000 px.
    cell: u32,
    /// Text size of class names; `None` when rows are too thin to hold text.
    name_size: Option<u32>,
    /// Class names as drawn (shortened to [`NAME_MAX`]).
    names: Vec<String>,
    /// Width of the widest drawn name.
    name_width: u32,
    /// Top-left corner of the grid.
    origin: (i32, i32),
}

fn confusion_layout(names: &[String], title: &str) -> ConfusionLayout {
    let k = names.len().max(1) as u32;
    let cell = (900 / k).clamp(2, 64);
    let name_size = (cell >= 10).then(|| (cell * 3 / 4).clamp(10, LABEL_SIZE));
    let names: Vec<String> = match name_size {
        Some(s) => names.iter().map(|n| fit(n, s, NAME_MAX)).collect(),
        None => Vec::new(),
    };
    let name_width = names
        .iter()
        .map(|n| text_width(n, name_size.unwrap_or(LABEL_SIZE)))
        .max()
        .unwrap_or(0);
    let name_area = if names.is_empty() { 4 } else { name_width + 12 };
    let grid = cell * k;
    let natural = MARGIN + AXIS_TITLE_AREA + name_area + grid + COLOUR_BAR_AREA;
    let width = natural
        .max(text_width(title, TITLE_SIZE).min(1600) + 2 * MARGIN + 20)
        .max(480);
    let height = TITLE_AREA + grid + name_area + AXIS_TITLE_AREA + MARGIN;
    // Extra width (a long title, few classes) is shared on both sides.
    let left = (width - natural) / 2 + MARGIN + AXIS_TITLE_AREA + name_area;
    ConfusionLayout {
        size: (width, height),
        cell,
        name_size,
        names,
        name_width,
        origin: (left as i32, TITLE_AREA as i32),
    }
}

/// Size of [`plot_confusion`]'s image for these class names and title, `(width, height)`
/// in pixels: it grows with the class count (up to ~1000 px of grid) and with the longest
/// name (up to 200 px); a long title widens it.
pub fn confusion_size(names: &[String], title: &str) -> (u32, u32) {
    confusion_layout(names, title).size
}

/// Draws the confusion matrix `cm` (rows: true class, columns: predicted) as a heatmap to
/// the PNG `path`: each cell coloured by its share of its row (so a rare class's recall
/// shows as clearly as a frequent one's) and labelled with its count where cells are big
/// enough; class names on both axes; a colour bar. Rows of a class with no clip stay white.
/// The size is [`confusion_size`].
pub fn plot_confusion(
    cm: &ConfusionMatrix,
    names: &[String],
    title: &str,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let k = cm.classes();
    if names.len() != k {
        return Err(Error::Input(format!(
            "{}: {} class names for a {k}-class confusion matrix",
            path.display(),
            names.len()
        )));
    }
    if k == 0 {
        return Err(Error::Input(format!(
            "{}: the confusion matrix has no classes; nothing to plot",
            path.display()
        )));
    }
    let layout = confusion_layout(names, title);
    let size = layout.size;
    let cell = layout.cell as i32;
    let grid = cell * k as i32;
    let (x0, y0) = layout.origin;
    render(path, size, |root| {
        let e = |e| draw_error(path, e);
        let centred = |s: u32| {
            font(s)
                .into_text_style(root)
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        let title = fit(title, TITLE_SIZE, size.0 - 2 * MARGIN);
        root.draw(&Text::new(
            title,
            (size.0 as i32 / 2, TITLE_AREA as i32 / 2),
            centred(TITLE_SIZE),
        ))
        .map_err(e)?;

        // Counts, in the largest size (up to the name size) at which the widest fits.
        let widest = (0..k)
            .flat_map(|t| cm.row(t).iter())
            .max()
            .copied()
            .unwrap_or(0);
        let count_size = (9..=LABEL_SIZE.min(cell as u32 / 2))
            .rev()
            .find(|&s| text_width(&widest.to_string(), s) as i32 <= cell - 8);
        for t in 0..k {
            let support = cm.support(t);
            for p in 0..k {
                let n = cm.get(t, p);
                let share = if support == 0 {
                    0.0
                } else {
                    n as f64 / support as f64
                };
                let (x, y) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    blues(share).filled(),
                ))
                .map_err(e)?;
                if let Some(s) = count_size {
                    // White on dark cells; zeros in grey so that the non-zero ones stand out.
                    let colour = if share > 0.55 {
                        WHITE
                    } else if n == 0 {
                        RGBColor(160, 160, 160)
                    } else {
                        BLACK
                    };
                    root.draw(&Text::new(
                        n.to_string(),
                        (x + cell / 2, y + cell / 2),
                        centred(s).color(&colour),
                    ))
                    .map_err(e)?;
                }
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + grid, y0 + grid)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?;

        // Class names: true classes left of the rows, predicted ones under the columns,
        // read bottom to top.
        if let Some(s) = layout.name_size {
            for (i, name) in layout.names.iter().enumerate() {
                let mid = i as i32 * cell + cell / 2;
                root.draw(&Text::new(
                    name.clone(),
                    (x0 - 8, y0 + mid),
                    font(s)
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(e)?;
                root.draw(&Text::new(
                    name.clone(),
                    (x0 + mid, y0 + grid + 8),
                    font(s)
                        .transform(FontTransform::Rotate270)
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(e)?;
            }
        }
        // Axis titles just beyond the longest name.
        let gap = if layout.names.is_empty() {
            4
        } else {
            layout.name_width as i32 + 12
        };
        root.draw(&Text::new(
            "true class",
            (x0 - gap - AXIS_TITLE_AREA as i32 / 2, y0 + grid / 2),
            font(AXIS_TITLE_SIZE)
                .transform(FontTransform::Rotate270)
                .into_text_style(root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
        let predicted = if layout.names.is_empty() {
            format!("predicted class ({k} classes, too many to name)")
        } else {
            "predicted class".to_string()
        };
        root.draw(&Text::new(
            predicted,
            (x0 + grid / 2, y0 + grid + gap + AXIS_TITLE_AREA as i32 / 2),
            centred(AXIS_TITLE_SIZE),
        ))
        .map_err(e)?;

        // Colour bar: the share of the true class's clips, 0 at the bottom.
        let bar_x = x0 + grid + 24;
        for j in 0..grid {
            let share = 1.0 - j as f64 / (grid - 1).max(1) as f64;
            root.draw(&Rectangle::new(
                [(bar_x, y0 + j), (bar_x + 16, y0 + j + 1)],
                blues(share).filled(),
            ))
            .map_err(e)?;
        }
        root.draw(&Rectangle::new(
            [(bar_x, y0), (bar_x + 16, y0 + grid)],
            BLACK.stroke_width(1),
        ))
        .map_err(e)?;
        for (share, label) in [(0.0, "0"), (0.5, "0.5"), (1.0, "1")] {
            let y = y0 + ((1.0 - share) * (grid - 1) as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(bar_x + 16, y), (bar_x + 21, y)],
                BLACK.stroke_width(1),
            ))
            .map_err(e)?;
            root.draw(&Text::new(
                label,
                (bar_x + 25, y),
                font(TICK_SIZE)
                    .into_text_style(root)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(e)?;
        }
        root.draw(&Text::new(
            "share of the true class",
            (
                bar_x + 25 + text_width("0.5", TICK_SIZE) as i32 + 18,
                y0 + grid / 2,
            ),
            font(TICK_SIZE)
                .transform(FontTransform::Rotate90)
                .into_text_style(root)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(e)?;
        Ok(())
    })
}

/// A named series of `(x, y)` points.
type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// The finite points of each series; an error if none is left anywhere.
fn finite_series<'a>(
    path: &Path,
    series: &'a [(String, Vec<(f64, f64)>)],
) -> Result<Vec<Series<'a>>> {
    let kept: Vec<Series<'a>> = series
        .iter()
        .map(|(name, pts)| {
            let finite = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            (name.as_str(), finite)
        })
        .collect();
    if kept.iter().all(|(_, pts)| pts.is_empty()) {
        return Err(Error::Input(format!(
            "{}: nothing to plot: the {} series hold no finite point",
            path.display(),
            series.len()
        )));
    }
    Ok(kept)
}

/// `lo..hi` widened by 5% (or by 5% of the value when flat) so that lines do not sit on
/// the frame.
fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1e-9) * 0.05
    };
    (lo - pad)..(hi + pad)
}

/// Draws training curves (`(x, y)` points per named series, e.g. loss per step, accuracy
/// per epoch, learning rate) as lines on shared axes to the PNG `path`, with a legend;
/// [`CURVES_SIZE`] pixels. Non-finite points (a NaN loss) are left out; short series also
/// get a marker per point, so that a one-epoch curve is still visible.
pub fn plot_curves(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let series = finite_series(path, series)?;
    let points = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let (mut x_lo, mut x_hi, mut y_lo, mut y_hi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points() {
        (x_lo, x_hi) = (x_lo.min(x), x_hi.max(x));
        (y_lo, y_hi) = (y_lo.min(y), y_hi.max(y));
    }
    let (x_range, y_range) = (padded(x_lo, x_hi), padded(y_lo, y_hi));
    if [x_range.start, x_range.end, y_range.start, y_range.end]
        .iter()
        .any(|v| !v.is_finite())
    {
        return Err(Error::Input(format!(
            "{}: values up to x = {x_hi:e}, y = {y_hi:e} (down to {x_lo:e}, {y_lo:e}) are too \
             large to plot",
            path.display()
        )));
    }
    // The legend goes to the right-hand corner the curves leave emptier: a falling loss
    // leaves the top right free, a rising accuracy the bottom right.
    let (x_mid, y_mid) = ((x_lo + x_hi) / 2.0, (y_lo + y_hi) / 2.0);
    let right: Vec<f64> = points().filter(|p| p.0 >= x_mid).map(|p| p.1).collect();
    let upper = right.iter().filter(|&&y| y >= y_mid).count();
    let legend_at = if upper * 2 <= right.len() {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::LowerRight
    };
    let y_area = y_label_area(&y_range);
    let (x_range_c, y_range_c) = (x_range.clone(), y_range.clone());
    render(path, CURVES_SIZE, |root| {
        let e = |e| draw_error(path, e);
        let title = fit(title, TITLE_SIZE, CURVES_SIZE.0 - 40);
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(TITLE_SIZE))
            .margin(18)
            .x_label_area_size(TICK_SIZE + AXIS_TITLE_SIZE + 24)
            .y_label_area_size(y_area)
            .build_cartesian_2d(x_range, y_range)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|v| tick(*v, &x_range_c))
            .y_label_formatter(&|v| tick(*v, &y_range_c))
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_TITLE_SIZE))
            .light_line_style(RGBColor(240, 240, 240))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(e)?;
        for (i, (name, points)) in series.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(std::iter::once(PathElement::new(
                    points.clone(),
                    colour.stroke_width(2),
                )))
                .map_err(e)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3))
                });
            if points.len() <= 60 {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                    .map_err(e)?;
            }
        }
        chart
            .configure_series_labels()
            .position(legend_at)
            .margin(12)
            .label_font(font(LABEL_SIZE))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(170, 170, 170))
            .draw()
            .map_err(e)
    })
}

/// Size of [`plot_bars`]' image for `bars` bars, `(width, height)` in pixels.
pub fn bars_size(bars: usize) -> (u32, u32) {
    ((200 + 110 * bars as u32).max(560), 560)
}

/// Draws one bar per `(name, value)` (e.g. UAR or peak memory per method), each labelled
/// with its value, to the PNG `path`; [`bars_size`] pixels. The value axis includes 0.
/// Names too wide for their bar are written vertically (and shortened past 200 px).
pub fn plot_bars(
    title: &str,
    y_label: &str,
    bars: &[(String, f64)],
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    if bars.is_empty() {
        return Err(Error::Input(format!(
            "{}: nothing to plot: no bars given",
            path.display()
        )));
    }
    if let Some((name, v)) = bars.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::Input(format!(
            "{}: bar `{name}` has value {v}; every bar needs a finite value",
            path.display()
        )));
    }
    let n = bars.len();
    let size = bars_size(n);
    let lo = bars.iter().map(|b| b.1).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    // Headroom above (and below, for negative values) for the value labels.
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y_range = (lo - if lo < 0.0 { 0.1 * span } else { 0.0 })..(hi + 0.1 * span);
    if !(y_range.start.is_finite() && y_range.end.is_finite()) {
        return Err(Error::Input(format!(
            "{}: bar values from {lo:e} to {hi:e} are too large to plot",
            path.display()
        )));
    }
    let y_area = y_label_area(&y_range);
    let margin = 18;
    let slot = size.0.saturating_sub(2 * margin + y_area) / n as u32;
    // Names go under their bar on up to three lines; if one does not fit so, all are
    // written vertically instead.
    let wrapped: Option<Vec<Vec<String>>> = bars
        .iter()
        .map(|(name, _)| wrap(name, LABEL_SIZE, slot.saturating_sub(10), 3))
        .collect();
    let line_height = LABEL_SIZE as i32 + 2;
    let (names, vertical) = match wrapped {
        Some(lines) => (lines, false),
        None => (
            bars.iter()
                .map(|(name, _)| vec![fit(name, LABEL_SIZE, 200)])
                .collect(),
            true,
        ),
    };
    let x_area = if vertical {
        names
            .iter()
            .map(|l| text_width(&l[0], LABEL_SIZE))
            .max()
            .unwrap_or(0)
            + 16
    } else {
        names.iter().map(Vec::len).max().unwrap_or(1) as u32 * line_height as u32 + 14
    };
    render(path, size, |root| {
        let e = |e| draw_error(path, e);
        let title = fit(title, TITLE_SIZE, size.0 - 40);
        let mut chart = ChartBuilder::on(root)
            .caption(title, font(TITLE_SIZE))
            .margin(margin)
            .x_label_area_size(x_area)
            .y_label_area_size(y_area)
            .build_cartesian_2d(0.0..n as f64, y_range.clone())
            .map_err(e)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| tick(*v, &y_range))
            .y_desc(y_label)
            .label_style(font(TICK_SIZE))
            .axis_desc_style(font(AXIS_TITLE_SIZE))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let x = i as f64;
                Rectangle::new(
                    [(x + 0.15, 0.0), (x + 0.85, *v)],
                    PALETTE[i % PALETTE.len()].filled(),
                )
            }))
            .map_err(e)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let (dy, v_pos) = if *v >= 0.0 {
                    (-4, VPos::Bottom)
                } else {
                    (4, VPos::Top)
                };
                EmptyElement::at((i as f64 + 0.5, *v))
                    + Text::new(
                        compact(*v),
                        (0, dy),
                        font(LABEL_SIZE)
                            .into_text_style(root)
                            .pos(Pos::new(HPos::Center, v_pos)),
                    )
            }))
            .map_err(e)?;
        // Names under the bars, drawn here rather than as tick labels so that they sit
        // at the bars' centres.
        for (i, lines) in names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, y_range.start));
            for (l, line) in lines.iter().enumerate() {
                let style = if vertical {
                    font(LABEL_SIZE)
                        .transform(FontTransform::Rotate270)
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Right, VPos::Center))
                } else {
                    font(LABEL_SIZE)
                        .into_text_style(root)
                        .pos(Pos::new(HPos::Center, VPos::Top))
                };
                let at = (x, y + 8 + l as i32 * line_height);
                root.draw(&Text::new(line.clone(), at, style)).map_err(e)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_keeps_four_significant_digits() {
        assert_eq!(compact(61.523), "61.52");
        assert_eq!(compact(0.61523), "0.6152");
        assert_eq!(compact(1234.6), "1235");
        assert_eq!(compact(0.00015), "0.00015");
        assert_eq!(compact(2.0), "2");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(3e-7), "3e-7");
        assert_eq!(compact(2.5e-7), "2.5e-7");
    }

    #[test]
    fn tick_near_zero_reads_zero() {
        assert_eq!(tick(-5.55e-17, &(-0.4..0.9)), "0");
        assert_eq!(tick(1e-6, &(0.0..4e-6)), "1e-6");
    }

    #[test]
    fn blues_runs_from_white_to_dark_blue() {
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        assert_eq!(blues(0.5), RGBColor(107, 174, 214));
        assert_eq!(blues(2.0), blues(1.0));
    }

    #[test]
    fn confusion_cells_shrink_and_names_go_for_many_classes() {
        let named = |k: usize| -> Vec<String> { (0..k).map(|c| format!("class {c}")).collect() };
        let seven = confusion_layout(&named(7), "t");
        assert_eq!(seven.cell, 64);
        assert_eq!(seven.name_size, Some(LABEL_SIZE));
        let k400 = confusion_layout(&named(400), "t");
        assert_eq!(k400.cell, 2);
        assert_eq!(k400.name_size, None);
        assert!(k400.size.1 < 1100, "{:?}", k400.size);
    }

    #[test]
    fn long_names_and_titles_are_shortened_with_an_ellipsis() {
        let l = confusion_layout(&["x".repeat(100)], "t");
        assert!(l.name_width <= NAME_MAX);
        assert!(l.names[0].ends_with('…'), "{}", l.names[0]);
        assert_eq!(fit("short", LABEL_SIZE, 500), "short");
        let cut = fit("a rather long method name", LABEL_SIZE, 60);
        assert!(
            cut.ends_with('…') && text_width(&cut, LABEL_SIZE) <= 60,
            "{cut}"
        );
    }

    #[test]
    fn tick_label_width_covers_the_longest_tick() {
        // 0..0.0004 is labelled every 0.00005: 0.00035 is wider than either end.
        assert_eq!(
            tick_label_width(0.0, 0.0004),
            text_width("0.00035", TICK_SIZE)
        );
        // 0..67.6 is labelled every 10: two digits, not the range's end "67.6".
        assert_eq!(tick_label_width(0.0, 67.6), text_width("60", TICK_SIZE));
    }
}
