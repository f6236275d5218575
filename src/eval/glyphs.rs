//! Text for the plots: a plotters drawing backend that forwards all shapes to the bitmap
//! backend it wraps and lays out and rasterises text itself with ab_glyph, from the
//! compiled-in DejaVu Sans.
//!
//! Why not plotters' own `ab_glyph` feature: plotters 0.3.7 places each glyph at its pen
//! position without the glyph's side bearing and aligns glyphs by their own bounding boxes,
//! so letters collide ("an ger") and full stops float ("61·5"). Here each glyph is placed
//! at its outline's pixel bounds relative to a common baseline, with kerning.
//!
//! Contract, matching plotters' default text drawing so that its chart layout code (which
//! measures with [`DrawingBackend::estimate_text_size`]) places labels as it expects: the
//! text box is the advance width by the line height (ascent − descent) at a font size of
//! `style.size()` pixels of line height; the anchor is applied to that box before the
//! rotation, and the estimate is of the unrotated box.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// Width (sum of advances and kerning) and line height (ascent − descent) of `text` drawn
/// in `font` at `size` pixels of line height.
pub(super) fn text_size(font: &FontRef<'static>, text: &str, size: f64) -> (f32, f32) {
    let (width, ascent, descent) = crate::util::text_metrics(font, text, size as f32);
    (width, ascent - descent)
}

/// A backend `B` whose text is drawn with `font`.
pub(super) struct GlyphBackend<'f, B> {
    inner: B,
    font: &'f FontRef<'static>,
}

impl<'f, B: DrawingBackend> GlyphBackend<'f, B> {
    /// Wraps `inner`.
    pub(super) fn new(inner: B, font: &'f FontRef<'static>) -> Self {
        GlyphBackend { inner, font }
    }
}

impl<B: DrawingBackend> DrawingBackend for GlyphBackend<'_, B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = text_size(self.font, text, style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size();
        let (width, height) = text_size(self.font, text, size);
        // Offset of the box's top-left corner from the anchor, before rotation.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let font = self.font.as_scaled(PxScale::from(size as f32));
        let baseline = font.ascent();
        // Rasterise first (the font is borrowed from `self`), then draw.
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        let mut caret = 0.0;
        let mut prev = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                caret += font.kern(p, id);
            }
            let glyph = id.with_scale_and_position(font.scale(), point(caret + dx, baseline + dy));
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|x, y, coverage| {
                    pixels.push((
                        bounds.min.x as i32 + x as i32,
                        bounds.min.y as i32 + y as i32,
                        coverage,
                    ));
                });
            }
            caret += font.h_advance(id);
            prev = Some(id);
        }
        for (x, y, coverage) in pixels {
            if coverage <= 0.0 {
                continue;
            }
            let (x, y) = transform.transform(x, y);
            let pixel = BackendColor {
                alpha: color.alpha * coverage.min(1.0) as f64,
                rgb: color.rgb,
            };
            self.inner.draw_pixel((pos.0 + x, pos.1 + y), pixel)?;
        }
        Ok(())
    }
}
