//! A bitmap backend whose text is laid out and rasterised here with `ab_glyph` from the
//! embedded font.
//!
//! Why not plotters' own `ab_glyph` text: plotters 0.3.7 drops each glyph's left side bearing
//! and truncates each glyph's vertical offset separately, so letters sit unevenly (`0.3 000`,
//! raised `:`). Everything except text is delegated to plotters' [`BitMapBackend`]. Plotters'
//! `ab_glyph` feature stays on, with the same font registered, because a few plotters elements
//! measure text through the font rather than the backend; both measure advances the same way.

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

use super::FONT_TTF;

/// The parsed embedded font, or `None` if it cannot be read (then text drawing fails with an
/// error rather than a panic).
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_TTF).ok()).as_ref()
}

/// Why text could not be drawn.
#[derive(Debug)]
pub(crate) struct TextError;

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the embedded font could not be read")
    }
}

impl std::error::Error for TextError {}

/// Glyph positions of one line of text at `px` (the font's ascent − descent in pixels), with the
/// pen starting at x = 0 and the baseline at y = ascent, so the line's box is
/// `(0, 0)–(width, ascent − descent)`.
fn layout(text: &str, px: f32) -> Result<(Vec<ab_glyph::Glyph>, f32, f32), TextError> {
    let font = font().ok_or(TextError)?;
    let scaled = font.as_scaled(PxScale::from(px));
    let ascent = scaled.ascent();
    let mut caret = 0.0f32;
    let mut prev = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(px, point(caret, ascent)));
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    Ok((glyphs, caret, ascent - scaled.descent()))
}

/// Width and height in pixels of one line of text at `px`.
pub(crate) fn text_size(text: &str, px: f64) -> Result<(u32, u32), TextError> {
    let (_, w, h) = layout(text, px as f32)?;
    Ok((w.ceil() as u32, h.ceil() as u32))
}

/// [`BitMapBackend`] with the text of this module.
pub(crate) struct TextBitMap<'a> {
    inner: BitMapBackend<'a>,
}

impl<'a> TextBitMap<'a> {
    /// A backend drawing into `buffer` (RGB, `size.0 × size.1` pixels).
    pub(crate) fn with_buffer(buffer: &'a mut [u8], size: (u32, u32)) -> Self {
        TextBitMap { inner: BitMapBackend::with_buffer(buffer, size) }
    }
}

type Failure = DrawingErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

impl DrawingBackend for TextBitMap<'_> {
    type ErrorType = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Failure> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Failure> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Failure> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Result<(), Failure> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Failure> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Failure> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Failure> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Failure> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), Failure> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(&self, text: &str, style: &S) -> Result<(u32, u32), Failure> {
        text_size(text, style.size()).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))
    }

    fn draw_text<S: BackendTextStyle>(&mut self, text: &str, style: &S, pos: BackendCoord) -> Result<(), Failure> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let (glyphs, width, height) =
            layout(text, style.size() as f32).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -width / 2.0,
            HPos::Right => -width,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0.0,
            VPos::Center => -height / 2.0,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let font = font().ok_or_else(|| DrawingErrorKind::FontError(Box::new(TextError)))?;
        // whole-pixel offsets: the glyph bounds are whole pixels already (the outline carries the
        // sub-pixel position), so every row and column of a glyph maps to its own pixel
        let (ox, oy) = (dx.round() as i32, dy.round() as i32);
        let mut pixels: Vec<(i32, i32, f32)> = Vec::new();
        for g in glyphs {
            if let Some(outline) = font.outline_glyph(g) {
                let b = outline.px_bounds();
                let (bx, by) = (b.min.x.floor() as i32 + ox, b.min.y.floor() as i32 + oy);
                outline.draw(|x, y, coverage| {
                    if coverage > 0.0 {
                        pixels.push((bx + x as i32, by + y as i32, coverage.min(1.0)));
                    }
                });
            }
        }
        for (x, y, coverage) in pixels {
            let (tx, ty) = trans.transform(x, y);
            let c = BackendColor { alpha: color.alpha * f64::from(coverage), rgb: color.rgb };
            self.inner.draw_pixel((pos.0 + tx, pos.1 + ty), c)?;
        }
        Ok(())
    }
}
