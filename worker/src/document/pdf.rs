//! PDF: the first page drawn with hayro, at the size the largest variant needs.
//!
//! hayro is a pure-Rust PDF renderer (no unsafe code): it interprets content streams and
//! draws them, and does nothing else a PDF can ask for: it runs no JavaScript, follows no
//! link or file specification, fetches nothing; the standard fonts it needs are built in.
//! Before anything is drawn the document is bounded: at most `documents.max_pages` pages,
//! and a first page no larger than `documents.max_page_points` on either side (a PDF's own
//! limit is 14,400 pt, 200 inches). A PDF that needs a password is refused (422) saying so;
//! one encrypted with an empty user password (permissions only) is read as viewers read it.
//! The page is drawn on white, as viewers show it.

use common::config::{DocumentsConfig, LimitsConfig};
use common::media::MediaType;
use common::variant::Variant;
use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};
use image::RgbaImage;

use super::{Rendered, css_pixels, draw_size, unpremultiply};
use crate::error::ThumbnailError;

/// Reads the PDF `bytes`, checks its bounds, and draws its first page for `variants`
/// (planned as `enlarge`).
pub fn render(
    bytes: Vec<u8>,
    variants: &[Variant],
    limits: &LimitsConfig,
    documents: &DocumentsConfig,
) -> Result<Rendered, ThumbnailError> {
    let pdf = Pdf::new(bytes).map_err(|error| match error {
        LoadPdfError::Decryption(_) => invalid("it is encrypted and needs a password"),
        LoadPdfError::Invalid => invalid("it is not a PDF this renderer can read"),
    })?;
    let pages = pdf.pages();
    let count = pages.len();
    if count as u64 > documents.max_pages {
        return Err(too_large(format!(
            "it has {count} pages, over documents.max_pages ({})",
            documents.max_pages
        )));
    }
    let Some(page) = pages.first() else {
        return Err(invalid("it has no page"));
    };
    let (page_width, page_height) = page.render_dimensions();
    let max = documents.max_page_points as f32;
    if !(page_width > 0.0 && page_height > 0.0) {
        return Err(invalid("its first page has no area"));
    }
    if page_width > max || page_height > max {
        return Err(too_large(format!(
            "its first page is {page_width}×{page_height} pt, over documents.max_page_points ({})",
            documents.max_page_points
        )));
    }
    let (width, height) = (css_pixels(page_width), css_pixels(page_height));
    let (draw_width, draw_height) = draw_size(MediaType::Pdf, variants, (width, height), limits)?;
    // Into a canvas of exactly the size planned (hayro's `render` would truncate it).
    let (canvas_width, canvas_height) = (
        u16::try_from(draw_width).map_err(|_| invalid("the page is too wide to draw"))?,
        u16::try_from(draw_height).map_err(|_| invalid("the page is too tall to draw"))?,
    );
    let mut context = RenderContext::new(canvas_width, canvas_height);
    let transform = Affine::scale_non_uniform(
        f64::from(draw_width) / f64::from(page_width),
        f64::from(draw_height) / f64::from(page_height),
    ) * page.initial_transform(true).to_kurbo();
    hayro::render_into(
        page,
        &RenderCache::new(),
        &InterpreterSettings::default(),
        &RenderSettings::default(),
        &mut context,
        transform,
    );
    context.flush();
    let mut pixmap = Pixmap::new(canvas_width, canvas_height);
    context.render_with(
        &mut pixmap,
        &mut Resources::default(),
        RasterizerSettings {
            target_init: TargetInit::Clear(WHITE),
            ..RasterizerSettings::default()
        },
    );
    let (drawn_width, drawn_height) = (u32::from(pixmap.width()), u32::from(pixmap.height()));
    let mut pixels = pixmap.data_as_u8_slice().to_vec();
    unpremultiply(&mut pixels);
    let image = RgbaImage::from_raw(drawn_width, drawn_height, pixels)
        .ok_or_else(|| invalid("the renderer gave a buffer of the wrong size"))?;
    Ok(Rendered {
        image,
        width,
        height,
    })
}

/// A PDF that cannot be read (422).
fn invalid(detail: &str) -> ThumbnailError {
    ThumbnailError::Decode {
        media_type: MediaType::Pdf.as_str(),
        detail: detail.to_owned(),
    }
}

/// A PDF over one of its bounds (413).
fn too_large(detail: String) -> ThumbnailError {
    ThumbnailError::DocumentTooLarge {
        media_type: MediaType::Pdf.as_str(),
        detail,
    }
}
