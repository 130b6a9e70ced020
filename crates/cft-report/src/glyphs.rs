//! Text on bitmaps, laid out with each glyph's side bearing.
//!
//! plotters 0.3.7 draws an `ab_glyph` glyph's pixels from the pen position without adding the
//! glyph's left side bearing, so letters with a wide bearing shift left and words come apart
//! ("CFT-GA" reads "CF T-GA"). [`GlyphText`] wraps a backend and draws text itself, placing
//! every glyph at pen position + bearing (+ kerning); everything else goes to the inner
//! backend unchanged. The SVG backend writes `<text>` elements and needs no fix.

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::prelude::{DrawingBackend, IntoFont};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontTransform};
use std::sync::OnceLock;

/// The bundled font (the one registered as `sans-serif` for plotters).
pub(crate) const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).expect("the bundled DejaVuSans.ttf is a valid font"))
}

/// A backend whose text is drawn with correct glyph placement (see the module docs).
pub struct GlyphText<DB>(pub DB);

/// Calls `draw(x, y, coverage)` for every pixel of `text` at `size` pixels, the origin at the
/// layout box's top left as plotters places it (baseline at `size / 2` below the glyph tops'
/// reference), glyphs at pen position + left side bearing + kerning.
fn rasterize(size: f32, text: &str, mut draw: impl FnMut(i32, i32, f32)) {
    let font = font().as_scaled(size);
    let mut pen = 0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            pen += font.kern(p, id);
        }
        prev = Some(id);
        let glyph = id.with_scale_and_position(size, ab_glyph::point(pen, 0.0));
        if let Some(outline) = font.outline_glyph(glyph) {
            let rect = outline.px_bounds();
            // Floor, not truncation: glyph tops above and below the reference must move alike.
            let (x0, y0) = (rect.min.x.floor() as i32, (size / 2.0 + rect.min.y).floor() as i32);
            outline.draw(|x, y, a| draw(x0 + x as i32, y0 + y as i32, a));
        }
        pen += font.h_advance(id);
    }
}

impl<DB: DrawingBackend> DrawingBackend for GlyphText<DB> {
    type ErrorType = DB::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(a, b, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    /// plotters' own placement (layout box, anchor, rotation), with `rasterize`'s glyphs.
    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) =
            style.layout_box(text).map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let trans = style.transform();
        let anchor = style.anchor();
        let hanging =
            matches!((&trans, &anchor.h_pos, &anchor.v_pos), (FontTransform::Rotate90, HPos::Center, VPos::Top));
        let (dx, dy) = if hanging {
            // An x-axis label turned a quarter: plotters would centre it on the tick, half of
            // it above the axis; it hangs from the tick instead, centred across.
            (0, -height / 2)
        } else {
            let dx = match anchor.h_pos {
                HPos::Left => 0,
                HPos::Right => -width,
                HPos::Center => -width / 2,
            };
            let dy = match anchor.v_pos {
                VPos::Top => 0,
                VPos::Center => -height / 2,
                VPos::Bottom => -height,
            };
            (dx, dy)
        };
        let (w, h) = self.get_size();
        let mut result = Ok(());
        rasterize(style.size() as f32, text, |x, y, a| {
            if result.is_err() {
                return;
            }
            let (x, y) = trans.transform(x + dx - min_x, y + dy - min_y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                let c = BackendColor { alpha: color.alpha * f64::from(a), rgb: color.rgb };
                result = self.0.draw_pixel((x, y), c);
            }
        });
        result
    }
}

/// Width in pixels of `text` at `size` (for layouts that place text by hand).
pub fn text_width(text: &str, size: f64) -> i32 {
    ("sans-serif", size).into_font().box_size(text).map_or(0, |(w, _)| w as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns of ink of `text`.
    fn ink_columns(text: &str) -> Vec<bool> {
        let mut cols = vec![false; 200];
        rasterize(20.0, text, |x, _, a| {
            if a > 0.3 && (0..200).contains(&x) {
                cols[x as usize] = true;
            }
        });
        cols
    }

    #[test]
    fn letters_sit_at_their_bearings() {
        // "FT": the gap between F and T is what the font's metrics make it: F's last ink column
        // and T's first are as far apart as advance − F's ink − bearings say, not wider.
        let font = font().as_scaled(20.0);
        let (f, t) = (font.glyph_id('F'), font.glyph_id('T'));
        let cols = ink_columns("FT");
        let first_ink = cols.iter().position(|&c| c).unwrap() as f32;
        // F's left side bearing places its stem, not column 0.
        assert!((first_ink - font.h_side_bearing(f)).abs() <= 1.0, "{first_ink} vs {}", font.h_side_bearing(f));
        let t_alone = ink_columns("T").iter().position(|&c| c).unwrap() as f32;
        let t_in_pair = font.h_advance(f) + font.kern(f, t) + t_alone;
        let last_f = cols.iter().take(t_in_pair as usize).rposition(|&c| c).unwrap() as f32;
        assert!(t_in_pair - last_f <= 3.0, "gap {} px", t_in_pair - last_f);
    }
}
