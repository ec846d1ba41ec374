//! Colour management: what a source says about its colours, and thumbnails in sRGB.
//!
//! Every decoder hands over the colour description it reads beside the pixels
//! ([`Description`]): an embedded ICC profile (JPEG's APP2 segments joined, PNG's `iCCP`
//! inflated under the metadata bound, WebP's `ICCP`, TIFF's tag 34675, HEIF's `colr`), CICP
//! code points (HEIF `nclx`, PNG `cICP`), PNG's `sRGB`, or PNG's `gAMA` and `cHRM`. Nothing
//! said means sRGB, as every viewer assumes.
//!
//! [`Colour::of`] reads that description once per image into a moxcms profile (moxcms is
//! the colour engine `image` itself uses: pure Rust, SIMD, ICC v2 and v4, matrix-shaper and
//! LUT profiles; its error against LittleCMS on our fixtures is in the tests). A profile that
//! does not parse, or does not fit the pixels (a CMYK profile on RGB), is read as sRGB, and
//! the reason becomes a warning in the record's events: never a failed job.
//!
//! Each thumbnail is then either converted to sRGB ([`Colour::to_srgb`], `color: srgb`, the
//! default) or left as it is with the source's profile embedded ([`Colour::embedded`],
//! `color: keep`).
//!
//! The conversion runs on the thumbnail, after the resize, not on the decoded image: it costs
//! the thumbnail's pixels (10 000 for a 100×100) instead of the decode's (up to millions for
//! a PNG, which has no shrink-on-load), and since resampling is a weighted average of
//! neighbours, converting after it differs from converting first only where the filter
//! spans an edge between very different colours. `tests/colour.rs` holds this order, on
//! thumbnails of real photographs, to LittleCMS's conversion of the whole picture resampled
//! by Pillow: within 0.4 ΔE2000 on average. 16-bit thumbnails (the resizer keeps the
//! source's depth) convert at 16-bit precision. CMYK is the exception: a thumbnail cannot
//! hold it, so a CMYK JPEG converts through its profile as it is decoded ([`cmyk_to_rgb`]).

mod convert;
mod profile;

use std::sync::Arc;

use image::DynamicImage;
use moxcms::ColorProfile;

pub use convert::cmyk_to_rgb;

/// What a source says about its colours, as its decoder read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Description {
    /// Nothing: sRGB by convention.
    #[default]
    Unstated,
    /// sRGB, said outright (PNG `sRGB`).
    Srgb,
    /// An embedded ICC profile, as stored.
    Icc(Vec<u8>),
    /// CICP code points (ITU-T H.273): HEIF `nclx`, PNG `cICP`.
    Cicp {
        /// Colour primaries.
        primaries: u8,
        /// Transfer characteristics.
        transfer: u8,
    },
    /// PNG `gAMA` (the file's encoding exponent, 1/2.2 for most) and `cHRM` (white, red,
    /// green, blue as x, y pairs); either may be absent.
    Gamma {
        /// The encoding exponent.
        gamma: Option<f64>,
        /// White point and primaries.
        chromaticities: Option<[f64; 8]>,
    },
}

/// One image's colours, read once: the profile its pixels are in (none when that is sRGB or
/// is taken for it), its bytes for embedding, and why a stated profile was not used.
#[derive(Clone, Default)]
pub struct Colour {
    source: Option<Arc<ColorProfile>>,
    icc: Option<Arc<[u8]>>,
    warning: Option<String>,
}

impl std::fmt::Debug for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Colour")
            .field("converts", &self.source.is_some())
            .field("icc_bytes", &self.icc.as_ref().map(|icc| icc.len()))
            .field("warning", &self.warning)
            .finish()
    }
}

impl Colour {
    /// The colours of an image whose decoder read `description`. `grey` says the pixels are
    /// grey: a grey profile fits them, an RGB one does not (and the other way round).
    pub fn of(description: &Description, grey: bool) -> Self {
        match profile::read(description, grey) {
            Ok(None) => Self::default(),
            Ok(Some((profile, icc))) => Self {
                source: Some(Arc::new(profile)),
                icc: Some(icc.into()),
                warning: None,
            },
            Err(warning) => Self {
                warning: Some(warning),
                ..Self::default()
            },
        }
    }

    /// Whether the pixels are in some space other than sRGB, which [`Colour::to_srgb`]
    /// converts from.
    pub fn converts(&self) -> bool {
        self.source.is_some()
    }

    /// Why the stated colours were not used (read as sRGB instead), for the record's events.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The profile to embed in a thumbnail that keeps the source's colours: the source's own
    /// ICC profile, or one made from its CICP or gAMA/cHRM; none for sRGB.
    pub fn embedded(&self) -> Option<&[u8]> {
        self.icc.as_deref()
    }

    /// `image` (a thumbnail of this source) in sRGB. Alpha is kept, grey stays grey, the
    /// depth stays the same. A conversion the engine refuses leaves the pixels as they are.
    pub fn to_srgb(&self, image: DynamicImage) -> DynamicImage {
        match &self.source {
            None => image,
            Some(profile) => convert::to_srgb(profile, image),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_stated_and_srgb_stated_convert_nothing() {
        for description in [Description::Unstated, Description::Srgb] {
            let colour = Colour::of(&description, false);
            assert!(!colour.converts());
            assert!(colour.embedded().is_none());
            assert!(colour.warning().is_none());
        }
    }

    #[test]
    fn a_broken_profile_is_srgb_with_a_warning() {
        for bytes in [&b""[..], b"not a profile", &[0u8; 200]] {
            let colour = Colour::of(&Description::Icc(bytes.to_vec()), false);
            assert!(!colour.converts());
            assert!(colour.warning().unwrap().contains("ICC profile"));
        }
    }

    #[test]
    fn a_profile_of_the_wrong_kind_is_srgb_with_a_warning() {
        let grey = ColorProfile::new_gray_with_gamma(2.2).encode().unwrap();
        let colour = Colour::of(&Description::Icc(grey.clone()), false);
        assert!(!colour.converts());
        assert!(colour.warning().unwrap().contains("grey"), "{colour:?}");
        assert!(Colour::of(&Description::Icc(grey), true).converts());
    }

    #[test]
    fn wide_gamut_red_becomes_a_more_saturated_srgb_red() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        let colour = Colour::of(&Description::Icc(p3), false);
        assert!(colour.converts());
        let red = image::RgbImage::from_pixel(2, 2, image::Rgb([200, 30, 30]));
        let converted = colour.to_srgb(DynamicImage::ImageRgb8(red)).to_rgb8();
        let [r, g, b] = converted.get_pixel(0, 0).0;
        // P3 red is outside sRGB: more red, less green and blue once in sRGB.
        assert!(r > 200 && g < 30 && b < 30, "{r} {g} {b}");
    }
}
