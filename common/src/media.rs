//! Media types: the formats Thumbnailify accepts (images, documents and videos) and produces,
//! and sniffing of what a byte string really is.
//!
//! An upload declares its media type; [`sniff`] reads the magic bytes and says what the data
//! is, so that a PNG declared as `image/jpeg`, or a PDF declared as an image, is refused with
//! the name of what was found.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A format Thumbnailify reads: an image it decodes, or a video whose poster frame it takes.
/// Serialised as its media type, e.g. `"image/png"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `image/jpeg` (also accepted as `image/jpg`).
    Jpeg,
    /// `image/png`.
    Png,
    /// `image/gif`: the first frame is thumbnailed.
    Gif,
    /// `image/webp`.
    Webp,
    /// `image/tiff`.
    Tiff,
    /// `image/bmp`.
    Bmp,
    /// `image/jxl` (JPEG XL).
    Jxl,
    /// `image/avif`: read with the `heif` feature.
    Avif,
    /// `image/heic` (also accepted as `image/heif`): read with the `heif` feature.
    Heic,
    /// `image/svg+xml`: rendered from the vector at the size asked, never passed through.
    Svg,
    /// `application/pdf`: its first page rendered at the size asked.
    Pdf,
    /// `video/mp4` (also accepted as `video/x-m4v`).
    Mp4,
    /// `video/quicktime`.
    Quicktime,
    /// `video/webm`.
    Webm,
    /// `video/x-matroska`.
    Matroska,
    /// `video/x-msvideo` (AVI).
    Avi,
}

/// Every supported media type, in the order the API documents them.
pub const ALL: [MediaType; 16] = [
    MediaType::Jpeg,
    MediaType::Png,
    MediaType::Gif,
    MediaType::Webp,
    MediaType::Tiff,
    MediaType::Bmp,
    MediaType::Jxl,
    MediaType::Avif,
    MediaType::Heic,
    MediaType::Svg,
    MediaType::Pdf,
    MediaType::Mp4,
    MediaType::Quicktime,
    MediaType::Webm,
    MediaType::Matroska,
    MediaType::Avi,
];

impl MediaType {
    /// The canonical media type string.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Gif => "image/gif",
            MediaType::Webp => "image/webp",
            MediaType::Tiff => "image/tiff",
            MediaType::Bmp => "image/bmp",
            MediaType::Jxl => "image/jxl",
            MediaType::Avif => "image/avif",
            MediaType::Heic => "image/heic",
            MediaType::Svg => "image/svg+xml",
            MediaType::Pdf => "application/pdf",
            MediaType::Mp4 => "video/mp4",
            MediaType::Quicktime => "video/quicktime",
            MediaType::Webm => "video/webm",
            MediaType::Matroska => "video/x-matroska",
            MediaType::Avi => "video/x-msvideo",
        }
    }

    /// Whether this is a video: its thumbnails are made from a poster frame, by FFmpeg.
    pub fn is_video(self) -> bool {
        matches!(
            self,
            MediaType::Mp4
                | MediaType::Quicktime
                | MediaType::Webm
                | MediaType::Matroska
                | MediaType::Avi
        )
    }

    /// Whether this is a document drawn by a renderer at the size asked (SVG, PDF), rather
    /// than pixels decoded: it is rendered in a bounded child process.
    pub fn is_document(self) -> bool {
        matches!(self, MediaType::Svg | MediaType::Pdf)
    }

    /// Whether data sniffed as `found` is what a client declaring `self` sends. Containers
    /// that share one file format are the same here: an MP4 and a QuickTime file are both
    /// ISO base media files told apart only by a brand, and WebM is a kind of Matroska.
    pub fn admits(self, found: MediaType) -> bool {
        use MediaType::*;
        self == found
            || matches!(
                (self, found),
                (Mp4, Quicktime) | (Quicktime, Mp4) | (Matroska, Webm) | (Webm, Matroska)
            )
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media type string that names no supported image format. Its message does not repeat
/// the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the media type is not one of the supported image and video types")]
pub struct UnsupportedMediaType;

impl FromStr for MediaType {
    type Err = UnsupportedMediaType;

    /// Parses a media type, ignoring case and parameters (`image/png; q=1` is `image/png`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let essence = s.split(';').next().unwrap_or_default().trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Ok(MediaType::Jpeg),
            "image/png" => Ok(MediaType::Png),
            "image/gif" => Ok(MediaType::Gif),
            "image/webp" => Ok(MediaType::Webp),
            "image/tiff" => Ok(MediaType::Tiff),
            "image/bmp" | "image/x-bmp" | "image/x-ms-bmp" => Ok(MediaType::Bmp),
            "image/jxl" => Ok(MediaType::Jxl),
            "image/avif" => Ok(MediaType::Avif),
            "image/heic" | "image/heif" => Ok(MediaType::Heic),
            "image/svg+xml" => Ok(MediaType::Svg),
            "application/pdf" | "application/x-pdf" => Ok(MediaType::Pdf),
            "video/mp4" | "video/x-m4v" => Ok(MediaType::Mp4),
            "video/quicktime" => Ok(MediaType::Quicktime),
            "video/webm" => Ok(MediaType::Webm),
            "video/x-matroska" | "video/matroska" => Ok(MediaType::Matroska),
            "video/x-msvideo" | "video/avi" | "video/msvideo" => Ok(MediaType::Avi),
            _ => Err(UnsupportedMediaType),
        }
    }
}

/// In the OpenAPI document: a string, one of the media types accepted.
impl utoipa::PartialSchema for MediaType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ALL.iter().map(|media_type| media_type.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for MediaType {}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Bytes of a streamed file read before what it is (and so its size limit) is decided.
pub const SNIFF_BYTES: usize = 4096;

/// What the magic bytes of some data say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A supported format.
    Media(MediaType),
    /// Something recognised but not supported (the media type found, e.g.
    /// `application/zip`).
    Other(&'static str),
    /// Nothing recognisable.
    Unknown,
}

impl fmt::Display for Sniffed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sniffed::Media(media_type) => write!(f, "{media_type}"),
            Sniffed::Other(found) => f.write_str(found),
            Sniffed::Unknown => f.write_str("unrecognised data"),
        }
    }
}

/// Reads the magic bytes of `data` and names the format it is in.
pub fn sniff(data: &[u8]) -> Sniffed {
    if is_svg(data) {
        return Sniffed::Media(MediaType::Svg);
    }
    let Some(kind) = infer::get(data) else {
        return Sniffed::Unknown;
    };
    match kind.mime_type().parse() {
        Ok(media_type) => Sniffed::Media(media_type),
        Err(_) => Sniffed::Other(kind.mime_type()),
    }
}

/// Whether `data` starts as an SVG document: after an optional byte-order mark and white
/// space, nothing but an XML declaration, processing instructions, comments and a doctype
/// before an `<svg` root element within the first [`SNIFF_BYTES`].
fn is_svg(data: &[u8]) -> bool {
    let window = &data[..data.len().min(SNIFF_BYTES)];
    let mut rest = window.strip_prefix(b"\xef\xbb\xbf").unwrap_or(window);
    loop {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b"<svg") {
            return after
                .first()
                .is_some_and(|c| c.is_ascii_whitespace() || matches!(c, b'>' | b'/'));
        }
        let end: &[u8] = if rest.starts_with(b"<?") {
            b"?>"
        } else if rest.starts_with(b"<!--") {
            b"-->"
        } else if rest.starts_with(b"<!") {
            b">"
        } else {
            return false;
        };
        // A doctype with an internal subset ends at `]>`.
        let end: &[u8] = if rest.starts_with(b"<!DOCTYPE") {
            match (find(rest, b"["), find(rest, b">")) {
                (Some(open), Some(close)) if open < close => b"]>",
                _ => end,
            }
        } else {
            end
        };
        match find(rest, end) {
            Some(at) => rest = &rest[at + end.len()..],
            None => return false,
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_case_and_parameters() {
        assert_eq!("image/jpg".parse(), Ok(MediaType::Jpeg));
        assert_eq!("IMAGE/PNG; charset=binary".parse(), Ok(MediaType::Png));
        assert_eq!("image/svg+xml".parse(), Ok(MediaType::Svg));
        assert!("image/svg".parse::<MediaType>().is_err());
        assert!("".parse::<MediaType>().is_err());
        for media_type in ALL {
            assert_eq!(media_type.as_str().parse(), Ok(media_type));
        }
    }

    #[test]
    fn serialises_as_the_media_type_string() {
        let json = serde_json::to_string(&MediaType::Webp).unwrap();
        assert_eq!(json, "\"image/webp\"");
        assert_eq!(
            serde_json::from_str::<MediaType>(&json).unwrap(),
            MediaType::Webp
        );
    }

    #[test]
    fn sniffs_magic_bytes() {
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Sniffed::Media(MediaType::Png)
        );
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Sniffed::Media(MediaType::Jpeg)
        );
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Sniffed::Media(MediaType::Gif));
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Sniffed::Media(MediaType::Webp)
        );
        assert_eq!(
            sniff(b"II*\0\x08\0\0\0\x0e\0\0\x01"),
            Sniffed::Media(MediaType::Tiff)
        );
        assert_eq!(
            sniff(b"MM\0*\0\0\0\x08\0\x0e\x01\0"),
            Sniffed::Media(MediaType::Tiff)
        );
        assert_eq!(
            sniff(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0"),
            Sniffed::Media(MediaType::Bmp)
        );
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Media(MediaType::Pdf));
        assert_eq!(
            sniff(b"PK\x03\x04\x14\0\0\0"),
            Sniffed::Other("application/zip")
        );
        assert_eq!(
            sniff(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
            Sniffed::Media(MediaType::Svg)
        );
        assert_eq!(sniff(b"hello"), Sniffed::Unknown);
        assert_eq!(sniff(b""), Sniffed::Unknown);
    }

    #[test]
    fn sniffs_svg_after_its_prolog_only() {
        let svg = |s: &str| sniff(s.as_bytes()) == Sniffed::Media(MediaType::Svg);
        assert!(svg("<svg>"));
        assert!(svg("\u{feff}  \n<svg width='1'/>"));
        assert!(svg(
            "<?xml version='1.0'?>\n<!-- Generator: Illustrator -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\">\n<svg viewBox='0 0 1 1'></svg>"
        ));
        assert!(svg(
            "<!DOCTYPE svg [ <!ENTITY a \"<b>\"> ]><svg xmlns='http://www.w3.org/2000/svg'/>"
        ));
        assert!(!svg("<html><svg></svg></html>"));
        assert!(!svg("<svgfoo>"));
        assert!(!svg("<svg"));
        assert!(!svg("<!-- never closed <svg>"));
        assert!(!svg(&format!("{}<svg>", " ".repeat(SNIFF_BYTES))));
        assert!(!svg("hello <svg>"));
    }
}
