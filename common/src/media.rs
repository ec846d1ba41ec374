//! Media types: the formats Thumbnailify accepts and produces, and sniffing of what a byte
//! string really is.
//!
//! An upload declares its media type; [`sniff`] reads the magic bytes and says what the data
//! is, so that a PNG declared as `image/jpeg`, or a PDF declared as an image, is refused with
//! the name of what was found.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An image format Thumbnailify decodes. Serialised as its media type, e.g. `"image/png"`.
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
}

/// Every supported media type, in the order the API documents them.
pub const ALL: [MediaType; 6] = [
    MediaType::Jpeg,
    MediaType::Png,
    MediaType::Gif,
    MediaType::Webp,
    MediaType::Tiff,
    MediaType::Bmp,
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
        }
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media type string that names no supported image format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported media type {0:?}; supported: image/jpeg, image/png, image/gif, image/webp, image/tiff, image/bmp"
)]
pub struct UnsupportedMediaType(pub String);

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
            _ => Err(UnsupportedMediaType(essence.to_owned())),
        }
    }
}

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

/// What the magic bytes of some data say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A supported image format.
    Image(MediaType),
    /// Something recognised but not a supported image (the media type found, e.g.
    /// `application/pdf`).
    Other(&'static str),
    /// Nothing recognisable.
    Unknown,
}

impl fmt::Display for Sniffed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sniffed::Image(media_type) => write!(f, "{media_type}"),
            Sniffed::Other(found) => f.write_str(found),
            Sniffed::Unknown => f.write_str("unrecognised data"),
        }
    }
}

/// Reads the magic bytes of `data` and names the format it is in.
pub fn sniff(data: &[u8]) -> Sniffed {
    let Some(kind) = infer::get(data) else {
        return Sniffed::Unknown;
    };
    match kind.mime_type().parse() {
        Ok(media_type) => Sniffed::Image(media_type),
        Err(_) => Sniffed::Other(kind.mime_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aliases_case_and_parameters() {
        assert_eq!("image/jpg".parse(), Ok(MediaType::Jpeg));
        assert_eq!("IMAGE/PNG; charset=binary".parse(), Ok(MediaType::Png));
        assert!("image/svg+xml".parse::<MediaType>().is_err());
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
            Sniffed::Image(MediaType::Png)
        );
        assert_eq!(
            sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"),
            Sniffed::Image(MediaType::Jpeg)
        );
        assert_eq!(sniff(b"GIF89a\x01\0\x01\0"), Sniffed::Image(MediaType::Gif));
        assert_eq!(
            sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Sniffed::Image(MediaType::Webp)
        );
        assert_eq!(
            sniff(b"II*\0\x08\0\0\0\x0e\0\0\x01"),
            Sniffed::Image(MediaType::Tiff)
        );
        assert_eq!(
            sniff(b"MM\0*\0\0\0\x08\0\x0e\x01\0"),
            Sniffed::Image(MediaType::Tiff)
        );
        assert_eq!(
            sniff(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0\x28\0"),
            Sniffed::Image(MediaType::Bmp)
        );
        assert_eq!(sniff(b"%PDF-1.7\n"), Sniffed::Other("application/pdf"));
        assert_eq!(sniff(b"hello"), Sniffed::Unknown);
        assert_eq!(sniff(b""), Sniffed::Unknown);
    }
}
