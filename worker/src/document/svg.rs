//! SVG: the document's structure checked against its bounds, then rendered with resvg.
//!
//! An SVG is a program of sorts, and a hostile one can ask for much more than its bytes
//! suggest, so it is parsed (roxmltree, with the entity-expansion limits it has) and
//! measured before usvg sees it:
//!
//! - **depth**: how deep elements nest, with each `use` counted as one more level, past
//!   `documents.max_depth` is refused: usvg converts the tree recursively.
//! - **elements**: every element is counted as often as it would be drawn, so each `use`
//!   (and each `url(#…)` reference to a pattern, marker, clip path, mask or filter) adds the
//!   count of what it refers to. A chain of groups that each use the one before ten times (the
//!   vector form of the billion laughs) multiplies, and is refused (413) from this count before
//!   anything is expanded.
//!
//! Nothing outside the document is read: an `<image>` naming a file or a URL resolves to
//! nothing, as does an SVG inside a `data:` URL (it would escape these counts); a raster
//! image in a `data:` URL is drawn only when its header fits `limits.max_pixels`. No font is
//! loaded, so text is not drawn (this build of usvg has no text support at all).
//!
//! The picture is drawn at the size its largest variant needs, never a bitmap scaled up: a
//! vector has no pixel size of its own, so variants are planned as `enlarge`. The longest
//! side drawn is `limits.max_thumbnail_side`.

use std::collections::HashMap;
use std::sync::Arc;

use common::config::{DocumentsConfig, LimitsConfig};
use common::media::MediaType;
use common::variant::Variant;
use image::RgbaImage;
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::roxmltree::{self, Document, Node, NodeId};
use resvg::usvg::{self, ImageHrefResolver, ImageKind};

use super::{Rendered, css_pixels, draw_size, unpremultiply};
use crate::decode;
use crate::error::ThumbnailError;

/// Parses, measures and renders the SVG `bytes` for `variants` (already planned as
/// `enlarge`), within `limits` and `documents`.
pub fn render(
    bytes: &[u8],
    variants: &[Variant],
    limits: &LimitsConfig,
    documents: &DocumentsConfig,
) -> Result<Rendered, ThumbnailError> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8 text"))?;
    let parsing = roxmltree::ParsingOptions {
        allow_dtd: true,
        // Nodes (elements, text, comments) before any `use` is expanded: the bound below
        // counts elements only, so this one is looser.
        nodes_limit: u32::try_from(documents.max_elements.saturating_mul(4)).unwrap_or(u32::MAX),
        // An external entity (`SYSTEM "file:…"`) resolves to nothing.
        entity_resolver: None,
    };
    let document = Document::parse_with_options(text, parsing).map_err(xml_error(documents))?;
    Measure::new(&document, documents).check()?;
    let options = options(limits);
    let tree = usvg::Tree::from_xmltree(&document, &options).map_err(usvg_error)?;
    drop(document);
    let size = tree.size();
    let (width, height) = (css_pixels(size.width()), css_pixels(size.height()));
    let (draw_width, draw_height) = draw_size(MediaType::Svg, variants, (width, height), limits)?;
    let mut pixmap =
        Pixmap::new(draw_width, draw_height).ok_or_else(|| invalid("it has no area to draw"))?;
    let transform = Transform::from_scale(
        draw_width as f32 / size.width(),
        draw_height as f32 / size.height(),
    );
    resvg::render(&tree, transform, &mut pixmap.as_mut());
    let mut pixels = pixmap.take();
    unpremultiply(&mut pixels);
    let image = RgbaImage::from_raw(draw_width, draw_height, pixels)
        .ok_or_else(|| invalid("the renderer gave a buffer of the wrong size"))?;
    Ok(Rendered {
        image,
        width,
        height,
    })
}

/// usvg's options: nothing read from outside the document.
fn options(limits: &LimitsConfig) -> usvg::Options<'static> {
    let max_pixels = limits.max_pixels;
    let max_alloc = limits.max_alloc_bytes;
    usvg::Options {
        resources_dir: None,
        image_href_resolver: ImageHrefResolver {
            resolve_data: Box::new(move |_mime, data, _options| {
                embedded(data, max_pixels, max_alloc)
            }),
            resolve_string: Box::new(|_href, _options| None),
        },
        ..usvg::Options::default()
    }
}

/// A raster image from a `data:` URL, when its header says it is one we read and its size
/// fits the limits; anything else (an SVG, which would escape the element count, or an
/// unknown format) is nothing.
fn embedded(data: Arc<Vec<u8>>, max_pixels: u64, max_alloc: u64) -> Option<ImageKind> {
    let media_type = match common::media::sniff(&data) {
        common::media::Sniffed::Media(media_type) => media_type,
        _ => return None,
    };
    let limits = LimitsConfig {
        max_pixels,
        max_alloc_bytes: max_alloc,
        ..LimitsConfig::default()
    };
    let (width, height) = decode::probe(&data, media_type, &limits).ok()?;
    if u64::from(width) * u64::from(height) * 4 > max_alloc {
        return None;
    }
    match media_type {
        MediaType::Png => Some(ImageKind::PNG(data)),
        MediaType::Jpeg => Some(ImageKind::JPEG(data)),
        MediaType::Gif => Some(ImageKind::GIF(data)),
        MediaType::Webp => Some(ImageKind::WEBP(data)),
        _ => None,
    }
}

/// The document's elements counted as drawn, and their depth, memoised per element.
struct Measure<'a, 'input> {
    document: &'a Document<'input>,
    documents: &'a DocumentsConfig,
    /// Elements by `id`, for `use` and `url(#…)`.
    ids: HashMap<&'a str, Node<'a, 'input>>,
    /// Per element: its count and its height (levels below it, itself included), once known;
    /// `None` while it is being measured (a reference back to it is a cycle, which usvg
    /// skips, and counts nothing here).
    known: HashMap<NodeId, Option<(u64, u32)>>,
}

impl<'a, 'input> Measure<'a, 'input> {
    fn new(document: &'a Document<'input>, documents: &'a DocumentsConfig) -> Self {
        let ids = document
            .descendants()
            .filter(|node| node.is_element())
            .filter_map(|node| node.attribute("id").map(|id| (id, node)))
            .collect();
        Self {
            document,
            documents,
            ids,
            known: HashMap::new(),
        }
    }

    /// Refuses a document over `max_depth` or `max_elements`.
    fn check(mut self) -> Result<(), ThumbnailError> {
        let root = self.document.root_element();
        let (count, _) = self.measure(root, 1)?;
        if count > self.documents.max_elements {
            return Err(too_large(format!(
                "it draws at least {count} elements with every use expanded, over documents.max_elements ({})",
                self.documents.max_elements
            )));
        }
        Ok(())
    }

    /// The count and height of `node`, found at `depth`.
    fn measure(
        &mut self,
        node: Node<'a, 'input>,
        depth: u32,
    ) -> Result<(u64, u32), ThumbnailError> {
        let max_depth = self.documents.max_depth;
        let over_depth = || {
            too_large(format!(
                "its elements nest (with uses) deeper than documents.max_depth ({max_depth})"
            ))
        };
        if depth > max_depth {
            return Err(over_depth());
        }
        match self.known.get(&node.id()) {
            Some(Some((count, height))) => {
                if depth + height - 1 > max_depth {
                    return Err(over_depth());
                }
                return Ok((*count, *height));
            }
            Some(None) => return Ok((0, 0)),
            None => {}
        }
        self.known.insert(node.id(), None);
        let mut count: u64 = 1;
        let mut below: u32 = 0;
        let references: Vec<Node<'a, 'input>> = references(node)
            .filter_map(|id| self.ids.get(id).copied())
            .collect();
        for child in node.children().filter(Node::is_element).chain(references) {
            let (child_count, child_height) = self.measure(child, depth + 1)?;
            count = count.saturating_add(child_count);
            below = below.max(child_height);
            if count > self.documents.max_elements {
                // Enough is known to refuse; the exact total would only cost more.
                break;
            }
        }
        let height = below + 1;
        self.known.insert(node.id(), Some((count, height)));
        Ok((count, height))
    }
}

/// The ids an element refers to: its `href` (or `xlink:href`) when it is a `use`, and every
/// `url(#…)` in its attributes.
fn references<'a, 'input>(node: Node<'a, 'input>) -> impl Iterator<Item = &'a str> + 'a {
    let href = (node.tag_name().name() == "use")
        .then(|| {
            node.attributes()
                .find(|attribute| attribute.name() == "href")
                .and_then(|attribute| attribute.value().strip_prefix('#'))
        })
        .flatten();
    let urls = node
        .attributes()
        .flat_map(|attribute| url_ids(attribute.value()));
    href.into_iter().chain(urls)
}

/// The ids of every `url(#id)` in `value`.
fn url_ids(value: &str) -> impl Iterator<Item = &str> {
    value.split("url(").skip(1).filter_map(|rest| {
        let rest = rest.trim_start().trim_start_matches(['"', '\'']);
        let id = rest.strip_prefix('#')?;
        let end = id.find([')', '"', '\'']).unwrap_or(id.len());
        Some(id[..end].trim_end())
    })
}

/// A document that cannot be read, in words that do not repeat it.
fn invalid(detail: &str) -> ThumbnailError {
    ThumbnailError::Decode {
        media_type: MediaType::Svg.as_str(),
        detail: detail.to_owned(),
    }
}

/// A document over one of its bounds (413).
fn too_large(detail: String) -> ThumbnailError {
    ThumbnailError::DocumentTooLarge {
        media_type: MediaType::Svg.as_str(),
        detail,
    }
}

/// roxmltree's error, as ours: where it is, not what the document says there.
fn xml_error(documents: &DocumentsConfig) -> impl Fn(roxmltree::Error) -> ThumbnailError + '_ {
    move |error| match error {
        roxmltree::Error::NodesLimitReached => too_large(format!(
            "it has more nodes than documents.max_elements ({}) allows",
            documents.max_elements
        )),
        roxmltree::Error::EntityReferenceLoop(_) => {
            too_large("its entities expand past the parser's bound (a loop or a bomb)".to_owned())
        }
        other => {
            let at = other.pos();
            invalid(&format!(
                "it is not well-formed XML (line {}, column {})",
                at.row, at.col
            ))
        }
    }
}

/// usvg's error, as ours.
fn usvg_error(error: usvg::Error) -> ThumbnailError {
    match error {
        usvg::Error::ElementsLimitReached => {
            too_large("it has more elements than the renderer allows".to_owned())
        }
        usvg::Error::InvalidSize => invalid("it has no size: no width, height or viewBox above 0"),
        usvg::Error::ParsingFailed(_) | usvg::Error::NotAnUtf8Str => {
            invalid("it is not a valid SVG")
        }
        usvg::Error::MalformedGZip | usvg::Error::SvgzFeatureNotEnabled => {
            invalid("compressed SVG (SVGZ) is not read")
        }
    }
}
