//! The study's figures as PNG files: the paper's grid of coronal slices (methods × planes), a
//! `plot_slices`-style grid (3 axes × N slices), the top-region bar chart, the method distance
//! matrix, learning curves, ROC curves, the ground-truth score chart, the effect-size sweep, and
//! the sanity and faithfulness checks (cascading weight randomisation, deletion curves).
//!
//! Text is drawn with DejaVu Sans embedded in the crate (`assets/DejaVuSans.ttf`, Bitstream Vera
//! licence, see `assets/LICENSE-DejaVu.txt`), laid out with `ab_glyph` by this crate's bitmap
//! backend (`text.rs`; plotters' own `ab_glyph` text misplaces glyphs): no system fonts and no
//! fontconfig are needed. Every figure takes its size in pixels and is written
//! atomically (temporary file in the same folder, then rename). Degenerate input (an all-zero or
//! constant map, an empty table, NaN scores) never fails a figure: the figure says so instead.
//!
//! Orientation of brain slices (arrays indexed `[i, j, k]` on the project's RAS grids, where `i`
//! runs to the subject's right, `j` to anterior, `k` to superior; voxels assumed isotropic):
//! superior is up in coronal and sagittal views, anterior is up in axial views; coronal and axial
//! views are in the neurological convention (the subject's left on the left of the picture,
//! marked `L` / `R`), sagittal views have anterior on the right (marked `P` / `A`).

mod charts;
mod sanity;
mod slices;
mod sweep;
mod text;

use std::path::Path;
use std::sync::OnceLock;

use adni_data::fsutil::write_bytes_atomically;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use charts::{
    bar_chart_top_regions, comparison_matrix, distance_matrix, ground_truth_chart, learning_curves, roc_auc,
    roc_curves, roc_points,
};
pub use sanity::{DeletionUnit, deletion_chart, deletion_chart_for, randomisation_chart};
pub use slices::{
    OverlayScale, PAPER_CORONAL_SLICES_1MM, coronal_index, overlay_max, paper_coronal_slices, paper_figure, percentile,
    plot_slices,
};
pub use sweep::sweep_chart;

use crate::error::{ReportError, Result};

/// The embedded font (DejaVu Sans 2.37).
static FONT_TTF: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The font family name every figure uses; registered once with the embedded font.
pub(crate) const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process). Text is drawn by
/// [`text::TextBitMap`]; plotters measures some text through its own font table.
fn ensure_font() -> std::result::Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_TTF).is_ok());
    if ok { Ok(()) } else { Err("the embedded font could not be read".into()) }
}

/// Result of drawing code inside a canvas.
pub(crate) type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The drawing area every figure draws on.
pub(crate) type Area<'a> = DrawingArea<text::TextBitMap<'a>, Shift>;

/// Smallest and largest figure side accepted, in pixels.
const MIN_SIDE: u32 = 64;
const MAX_SIDE: u32 = 16_384;

/// An RGB picture that images are copied into directly and plotters draws text and charts on.
pub(crate) struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    /// A white canvas; errors on sizes outside 64–16 384 px.
    pub(crate) fn new(size: (u32, u32)) -> Result<Canvas> {
        let (w, h) = size;
        if !(MIN_SIDE..=MAX_SIDE).contains(&w) || !(MIN_SIDE..=MAX_SIDE).contains(&h) {
            return Err(ReportError::invalid(
                "size",
                format!("found {w}×{h} px, expected each side between {MIN_SIDE} and {MAX_SIDE}"),
            ));
        }
        Ok(Canvas { width: w, height: h, rgb: vec![255; w as usize * h as usize * 3] })
    }

    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    pub(crate) fn height(&self) -> u32 {
        self.height
    }

    /// Sets one pixel; positions outside the canvas are ignored.
    pub(crate) fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            let o = (y as usize * self.width as usize + x as usize) * 3;
            self.rgb[o..o + 3].copy_from_slice(&c);
        }
    }

    /// Runs plotters drawing code on the canvas.
    pub(crate) fn draw(&mut self, f: impl FnOnce(&Area<'_>) -> DrawResult) -> std::result::Result<(), String> {
        ensure_font()?;
        let root = text::TextBitMap::with_buffer(&mut self.rgb, (self.width, self.height)).into_drawing_area();
        f(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }

    /// The picture as PNG bytes.
    pub(crate) fn png(&self) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc.write_header().map_err(|e| e.to_string())?;
            w.write_image_data(&self.rgb).map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// Encodes and writes the picture to `path` atomically.
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.png().map_err(|m| figure_error(path, m))?;
        write_bytes_atomically(path, &bytes)?;
        Ok(())
    }
}

pub(crate) fn figure_error(path: &Path, message: impl Into<String>) -> ReportError {
    ReportError::Figure { path: path.to_path_buf(), message: message.into() }
}

/// The base text size for a figure: about 1/45 of its smaller side, 10–24 px.
pub(crate) fn base_font(size: (u32, u32)) -> f64 {
    (f64::from(size.0.min(size.1)) / 45.0).clamp(10.0, 24.0)
}

/// Text style in the embedded font, at a whole number of pixels (at least 6).
pub(crate) fn text_style(px: f64, color: RGBColor) -> TextStyle<'static> {
    let px = px.round().max(6.0);
    TextStyle { font: (FONT, px).into_font(), color: color.to_backend_color(), pos: Pos::default() }
}

/// A number for an axis tick or a bar label: [`format_float`](crate::tables::format_float) without
/// trailing zeros (`0.05`, `0.1`, `2`).
pub(crate) fn short_float(x: f64) -> String {
    let s = crate::tables::format_float(x);
    if s.contains('.') && !s.contains('e') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A qualitative palette (Tableau 10) for methods, folds and sets.
pub(crate) fn palette(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

/// The palette entries methods are drawn in: every Tableau 10 colour but its grey (index 7),
/// which the charts keep for reference lines (random ordering, thresholds).
const METHOD_PALETTE: [usize; 9] = [0, 1, 2, 3, 4, 5, 6, 8, 9];

/// The colour of a relevance method, the same in every figure whatever the other methods or
/// their order: the project's methods (the names `relevance::Method::name` gives, with spaces or
/// underscores for hyphens and any case) each have their own colour; any other name gets one by
/// a hash of its normalised name (FNV-1a), so it is stable too but may share a colour with another.
pub(crate) fn method_colour(name: &str) -> RGBColor {
    const KNOWN: [&str; 9] = [
        "sensitivity",
        "guided-backprop",
        "occlusion",
        "area-occlusion",
        "grad-cam",
        "guided-grad-cam",
        "integrated-gradients",
        "smoothgrad",
        "lrp",
    ];
    let key: String =
        name.trim().chars().map(|c| if c == ' ' || c == '_' { '-' } else { c.to_ascii_lowercase() }).collect();
    let slot = KNOWN.iter().position(|&k| k == key).unwrap_or_else(|| {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        (hash % METHOD_PALETTE.len() as u64) as usize
    });
    palette(METHOD_PALETTE[slot])
}

/// The colour of notes printed on a figure in place of data ("all-zero map", "n/a").
pub(crate) const NOTE: RGBColor = RGBColor(80, 80, 80);

/// Draws `message` centred in `area` (used when there is nothing to plot).
pub(crate) fn draw_message(area: &Area<'_>, message: &str, px: f64) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let style = text_style(px, NOTE).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(message.to_string(), (w as i32 / 2, h as i32 / 2), style))?;
    Ok(())
}

/// `text` cut to fit `max_px` at `px` (with an ellipsis), using the font's own measure.
pub(crate) fn fit_text(area: &Area<'_>, text: &str, px: f64, max_px: u32) -> String {
    let style = text_style(px, BLACK);
    let width = |s: &str| area.estimate_text_size(s, &style).map(|(w, _)| w).unwrap_or(0);
    if width(text) <= max_px {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for n in (1..chars.len()).rev() {
        let s: String = chars[..n].iter().collect::<String>() + "…";
        if width(&s) <= max_px {
            return s;
        }
    }
    "…".into()
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Decoding written PNGs in tests.

    use std::path::Path;

    /// Width, height and RGB bytes of a PNG file.
    pub(crate) fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Number of pixels that are not white.
    pub(crate) fn non_white(rgb: &[u8]) -> usize {
        rgb.chunks(3).filter(|p| p != &[255, 255, 255]).count()
    }

    /// Number of pixels that are clearly red (the relevance overlay).
    pub(crate) fn reddish(rgb: &[u8]) -> usize {
        rgb.chunks(3).filter(|p| p[0] > 150 && p[1] < 100 && p[2] < 100).count()
    }

    /// Where sample figures go when `REPORT_SAMPLES` names a folder (to look at them).
    pub(crate) fn sample_dir() -> Option<std::path::PathBuf> {
        std::env::var_os("REPORT_SAMPLES").map(std::path::PathBuf::from)
    }

    /// The output path of a test figure: in the sample folder when set, else in `tmp`.
    pub(crate) fn out_path(tmp: &Path, name: &str) -> std::path::PathBuf {
        match sample_dir() {
            Some(d) => {
                std::fs::create_dir_all(&d).unwrap();
                d.join(name)
            }
            None => tmp.join(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_draws_text_without_system_fonts() {
        let mut c = Canvas::new((200, 80)).unwrap();
        c.draw(|root| {
            root.draw(&Text::new("Hippocampus", (10, 30), text_style(20.0, BLACK)))?;
            Ok(())
        })
        .unwrap();
        assert!(test_util::non_white(&c.rgb) > 100, "no glyph pixels drawn");
    }

    #[test]
    fn centred_text_has_no_blank_rows() {
        // regression: half-pixel anchors (odd text heights) rounded glyph rows apart, leaving a
        // white line through centred text
        for px in [11.0, 12.0, 15.0] {
            let mut c = Canvas::new((100, 64)).unwrap();
            c.draw(|root| {
                let style = text_style(px, BLACK).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw(&Text::new("HIH", (50, 31), style))?;
                Ok(())
            })
            .unwrap();
            let inked: Vec<bool> = c.rgb.chunks(300).map(|row| row.iter().any(|&v| v < 128)).collect();
            let first = inked.iter().position(|&b| b).unwrap();
            let last = inked.iter().rposition(|&b| b).unwrap();
            assert!(inked[first..=last].iter().all(|&b| b), "blank row inside the text at {px} px");
            assert!(last - first + 1 >= (px * 0.6) as usize, "glyphs too short at {px} px");
        }
    }

    #[test]
    fn a_method_keeps_its_colour_whatever_the_other_methods_or_their_order() {
        let first: Vec<RGBColor> = ["occlusion", "lrp-epsilon", "grad-cam"].iter().map(|m| method_colour(m)).collect();
        let second: Vec<RGBColor> = ["grad-cam", "sensitivity", "occlusion"].iter().map(|m| method_colour(m)).collect();
        assert_eq!(first[0], second[2], "occlusion changed colour");
        assert_eq!(first[2], second[0], "grad-cam changed colour");
        assert_eq!(method_colour("lrp-epsilon"), method_colour("LRP epsilon"), "names are normalised");
        assert_eq!(method_colour("guided backprop"), method_colour("guided-backprop"));
        // the project's methods are told apart, and none is drawn in the reference-line grey
        let known = ["sensitivity", "guided-backprop", "occlusion", "area-occlusion", "grad-cam", "guided-grad-cam"];
        let mut colours: Vec<RGBColor> = known.iter().map(|m| method_colour(m)).collect();
        colours.extend(["integrated-gradients", "smoothgrad", "lrp", "random weights"].map(method_colour));
        for (i, c) in colours.iter().enumerate() {
            assert_ne!(*c, palette(7), "{i} drawn in grey");
            if i < 9 {
                assert!(colours[..i].iter().all(|o| o != c), "method {} shares a colour", i);
            }
        }
    }

    #[test]
    fn short_floats_drop_trailing_zeros() {
        assert_eq!(short_float(0.05), "0.05");
        assert_eq!(short_float(2.0), "2");
        assert_eq!(short_float(0.15), "0.15");
        assert_eq!(short_float(1.5e-5), "1.500e-5");
    }

    #[test]
    fn canvas_rejects_silly_sizes() {
        assert!(Canvas::new((10, 400)).is_err());
        assert!(Canvas::new((400, 100_000)).is_err());
    }
}
