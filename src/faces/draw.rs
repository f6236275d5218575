//! Drawing on frames for annotated output (`--annotate`): face boxes, landmarks, and
//! labels with text in the compiled-in DejaVu Sans ([`crate::util::FONT`]).
//!
//! Coordinates are frame pixels with pixel `(i, j)` covering `[i, i+1) × [j, j+1)` (centre
//! at `i + 0.5`, as in [`super`]). Everything is clipped to the frame; shapes partly or
//! wholly outside it, and non-finite coordinates, never panic (non-finite ones draw
//! nothing).

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};

use crate::data::decode::Frame;

/// Coordinates are clamped to this many pixels either way before becoming integers.
const FAR: f32 = 1.0e6;

/// Pixel `(x, y)` set to `color` if it is in the frame.
fn put(frame: &mut Frame, x: i64, y: i64, color: [u8; 3]) {
    if x < 0 || y < 0 || x >= frame.width as i64 || y >= frame.height as i64 {
        return;
    }
    let o = (y as usize * frame.width + x as usize) * 3;
    if let Some(px) = frame.data.get_mut(o..o + 3) {
        px.copy_from_slice(&color);
    }
}

/// Pixel `(x, y)` blended towards `color` by `alpha` in `0..=1`, if it is in the frame.
fn blend(frame: &mut Frame, x: i64, y: i64, color: [u8; 3], alpha: f32) {
    if x < 0 || y < 0 || x >= frame.width as i64 || y >= frame.height as i64 {
        return;
    }
    let a = alpha.clamp(0.0, 1.0);
    let o = (y as usize * frame.width + x as usize) * 3;
    if let Some(px) = frame.data.get_mut(o..o + 3) {
        for (p, c) in px.iter_mut().zip(color) {
            *p = (*p as f32 + (c as f32 - *p as f32) * a).round() as u8;
        }
    }
}

/// Fills pixels `x0..x1 × y0..y1` (exclusive ends), clipped to the frame.
fn fill(frame: &mut Frame, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3]) {
    let (x0, x1) = (x0.max(0), x1.min(frame.width as i64));
    let (y0, y1) = (y0.max(0), y1.min(frame.height as i64));
    for y in y0..y1 {
        for x in x0..x1 {
            put(frame, x, y, color);
        }
    }
}

/// The pixels whose centres lie in `[a, b]`: `ceil(a − 0.5) ..= floor(b − 0.5)`, as an
/// exclusive range.
fn span(a: f32, b: f32) -> (i64, i64) {
    let (a, b) = (a.clamp(-FAR, FAR), b.clamp(-FAR, FAR));
    ((a - 0.5).ceil() as i64, (b - 0.5).floor() as i64 + 1)
}

/// Outlines `bbox` (`[x1, y1, x2, y2]`) with a stroke `thickness` pixels wide drawn inside
/// the box: the pixels whose centres lie in the box and within `thickness` pixels of its
/// edge. Edges outside the frame are not drawn. Nothing for a non-finite box.
pub fn draw_box(frame: &mut Frame, bbox: [f32; 4], color: [u8; 3], thickness: usize) {
    if !bbox.iter().all(|v| v.is_finite()) || thickness == 0 {
        return;
    }
    let (x0, x1) = span(bbox[0].min(bbox[2]), bbox[0].max(bbox[2]));
    let (y0, y1) = span(bbox[1].min(bbox[3]), bbox[1].max(bbox[3]));
    if x1 <= x0 || y1 <= y0 {
        return;
    }
    let t = thickness.min(FAR as usize) as i64;
    fill(frame, x0, y0, x1, (y0 + t).min(y1), color);
    fill(frame, x0, (y1 - t).max(y0), x1, y1, color);
    fill(frame, x0, y0, (x0 + t).min(x1), y1, color);
    fill(frame, (x1 - t).max(x0), y0, x1, y1, color);
}

/// Filled discs of `radius` pixels at `points`: the pixels whose centres lie within
/// `radius` of the point (with radius 0 or less: the pixel holding it). Non-finite points
/// are skipped.
pub fn draw_points(frame: &mut Frame, points: &[[f32; 2]], color: [u8; 3], radius: f32) {
    let r = if radius.is_finite() {
        radius.clamp(0.0, 1.0e4)
    } else {
        0.0
    };
    for &[px, py] in points {
        if !(px.is_finite() && py.is_finite()) {
            continue;
        }
        let (px, py) = (px.clamp(-FAR, FAR), py.clamp(-FAR, FAR));
        if r <= 0.0 {
            put(frame, px.floor() as i64, py.floor() as i64, color);
            continue;
        }
        let (x0, x1) = span(px - r, px + r);
        let (y0, y1) = span(py - r, py + r);
        let (x0, x1) = (x0.max(0), x1.min(frame.width as i64));
        let (y0, y1) = (y0.max(0), y1.min(frame.height as i64));
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - px, y as f32 + 0.5 - py);
                if dx * dx + dy * dy <= r * r {
                    put(frame, x, y, color);
                }
            }
        }
    }
}

/// The compiled-in font, parsed once (`None` if it does not parse: labels are then
/// drawn as their background only).
fn font() -> Option<&'static FontRef<'static>> {
    static PARSED: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    PARSED
        .get_or_init(|| FontRef::try_from_slice(crate::util::FONT).ok())
        .as_ref()
}

/// Writes `text` at `px` pixels of line height on a filled `bg` box, glyph coverage
/// alpha-blended in `fg`. The box (text plus a padding of `px / 5`) sits with its
/// bottom-left corner at `(x, y)`, above the point, as over a face box's top-left corner;
/// where there is no room above it goes below `(x, y)` instead; it is shifted left to stay
/// in the frame when it can, and clipped otherwise. Nothing for non-finite `x`, `y` or a
/// `px` outside `1..=1000`.
pub fn draw_label(
    frame: &mut Frame,
    x: f32,
    y: f32,
    text: &str,
    fg: [u8; 3],
    bg: [u8; 3],
    px: f32,
) {
    if !(x.is_finite() && y.is_finite() && (1.0..=1000.0).contains(&px)) {
        return;
    }
    let (x, y) = (x.clamp(-FAR, FAR), y.clamp(-FAR, FAR));
    let pad = (px / 5.0).round().max(1.0) as i64;
    let font = font();
    let scaled = font.map(|f| f.as_scaled(PxScale::from(px)));
    let (text_w, ascent, line) = match font {
        Some(f) => {
            let (w, ascent, descent) = crate::util::text_metrics(f, text, px);
            (w, ascent, ascent - descent)
        }
        None => (0.0, px, px),
    };
    let box_w = text_w.ceil() as i64 + 2 * pad;
    let box_h = line.ceil() as i64 + 2 * pad;
    let (ax, ay) = (x.round() as i64, y.round() as i64);
    let top = if ay - box_h >= 0 { ay - box_h } else { ay };
    let left = ax.min(frame.width as i64 - box_w).max(0);
    fill(frame, left, top, left + box_w, top + box_h, bg);
    let (Some(font), Some(s)) = (font, scaled) else {
        return;
    };
    let origin = (left + pad) as f32;
    let baseline = (top + pad) as f32 + ascent;
    let mut caret = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = s.glyph_id(c);
        if let Some(p) = prev {
            caret += s.kern(p, id);
        }
        let glyph = id.with_scale_and_position(s.scale(), point(origin + caret, baseline));
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            let (bx, by) = (b.min.x as i64, b.min.y as i64);
            outline.draw(|gx, gy, coverage| {
                if coverage > 0.0 {
                    blend(frame, bx + gx as i64, by + gy as i64, fg, coverage);
                }
            });
        }
        caret += s.h_advance(id);
        prev = Some(id);
    }
}

/// A colour for track `id`, distinct for neighbouring ids: hues a golden-ratio turn apart
/// (saturation 0.85, value 0.95), so the first ten or so are all easy to tell apart.
pub fn track_color(id: u32) -> [u8; 3] {
    let h = (id as f64 * 0.618_033_988_749_895 + 0.1).fract() * 6.0;
    let (s, v) = (0.85, 0.95);
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(w: usize, h: usize) -> Frame {
        Frame {
            width: w,
            height: h,
            data: vec![0; w * h * 3],
        }
    }

    fn at(f: &Frame, x: usize, y: usize) -> [u8; 3] {
        let o = (y * f.width + x) * 3;
        [f.data[o], f.data[o + 1], f.data[o + 2]]
    }

    #[test]
    fn box_sets_its_border_only() {
        let mut f = blank(20, 20);
        let red = [255, 0, 0];
        draw_box(&mut f, [5.0, 4.0, 15.0, 12.0], red, 1);
        for y in 0..20 {
            for x in 0..20 {
                let inside = (5..15).contains(&x) && (4..12).contains(&y);
                let border = inside && (x == 5 || x == 14 || y == 4 || y == 11);
                assert_eq!(
                    at(&f, x, y),
                    if border { red } else { [0; 3] },
                    "({x}, {y})"
                );
            }
        }
        let mut g = blank(20, 20);
        draw_box(&mut g, [5.0, 4.0, 15.0, 12.0], red, 2);
        assert_eq!(at(&g, 6, 6), red);
        assert_eq!(at(&g, 7, 6), [0; 3]);
    }

    #[test]
    fn drawing_clips_and_never_panics() {
        let mut f = blank(10, 8);
        let c = [9, 9, 9];
        draw_box(&mut f, [-5.0, -5.0, 5.0, 5.0], c, 1);
        // Only the right and bottom edges are in the frame.
        assert_eq!(at(&f, 4, 0), c);
        assert_eq!(at(&f, 0, 4), c);
        assert_eq!(at(&f, 0, 0), [0; 3]);
        let before = f.data.clone();
        draw_box(&mut f, [f32::NAN, 0.0, 5.0, 5.0], c, 1);
        draw_box(&mut f, [100.0, 100.0, 200.0, 200.0], c, 3);
        draw_box(&mut f, [f32::NEG_INFINITY, 0.0, f32::INFINITY, 5.0], c, 1);
        draw_points(
            &mut f,
            &[[f32::NAN, 1.0], [-50.0, 3.0], [1e30, 1e30]],
            c,
            2.0,
        );
        draw_label(&mut f, f32::NAN, 0.0, "x", c, c, 12.0);
        assert_eq!(f.data, before);
        draw_box(&mut f, [-1e30, -1e30, 1e30, 1e30], c, usize::MAX);
        draw_label(&mut f, 1e30, -1e30, "far away", c, c, 12.0);
        draw_points(&mut f, &[[9.9, 7.9]], [1, 2, 3], 0.0);
        assert_eq!(at(&f, 9, 7), [1, 2, 3]);
        let mut e = blank(0, 0);
        draw_box(&mut e, [0.0, 0.0, 5.0, 5.0], c, 1);
        draw_label(&mut e, 0.0, 0.0, "x", c, c, 12.0);
    }

    #[test]
    fn points_are_discs() {
        let mut f = blank(12, 12);
        draw_points(&mut f, &[[6.0, 6.0]], [7, 7, 7], 2.0);
        assert_eq!(at(&f, 5, 5), [7; 3]);
        assert_eq!(at(&f, 7, 5), [7; 3]);
        assert_eq!(at(&f, 3, 3), [0; 3]);
        assert_eq!(f.data.iter().filter(|&&v| v == 7).count() / 3, 12);
    }

    #[test]
    fn label_renders_text_on_its_background_deterministically() {
        let (fg, bg) = ([255, 255, 255], [200, 0, 0]);
        let mut f = blank(120, 60);
        draw_label(&mut f, 10.0, 40.0, "face 0", fg, bg, 16.0);
        // The background box ends at y = 40, above the point.
        let bg_rows: Vec<usize> = (0..60)
            .filter(|&y| (0..120).any(|x| at(&f, x, y) != [0; 3]))
            .collect();
        assert_eq!(*bg_rows.last().unwrap(), 39);
        assert_eq!(at(&f, 10, 39), bg);
        // Text pixels: inside the box, neither background nor black.
        let text = (0..60)
            .flat_map(|y| (0..120).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = at(&f, x, y);
                p != bg && p != [0; 3]
            })
            .collect::<Vec<_>>();
        assert!(text.len() > 20, "{}", text.len());
        assert!(text.iter().all(|&(x, y)| x >= 10 && y < 40));
        let mut g = blank(120, 60);
        draw_label(&mut g, 10.0, 40.0, "face 0", fg, bg, 16.0);
        assert_eq!(f.data, g.data);
        // No room above: below the point instead.
        let mut h = blank(120, 60);
        draw_label(&mut h, 10.0, 5.0, "face 0", fg, bg, 16.0);
        assert_eq!(at(&h, 10, 5), bg);
        assert_eq!(at(&h, 10, 4), [0; 3]);
    }

    #[test]
    fn track_colors_differ() {
        let colors: Vec<[u8; 3]> = (0..10).map(track_color).collect();
        for i in 0..10 {
            for j in i + 1..10 {
                let d: i32 = (0..3)
                    .map(|k| (colors[i][k] as i32 - colors[j][k] as i32).abs())
                    .sum();
                assert!(d > 40, "{i} {j} {colors:?}");
            }
        }
    }
}
