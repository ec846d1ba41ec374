//! A request's variant parameters, as text, read into the [`Settings`] its boxes take: each
//! parameter checked on its own, and named in the error when it cannot be used.

use serde::Deserialize;

use super::Fit;
use super::{FocalPoint, GRAVITIES, Gravity};
use crate::config::{ColorMode, OutputFormat};

/// The variant parameters of a request, as text, before they are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct VariantParams {
    /// `sizes`: boxes and preset names, comma-separated.
    pub sizes: Option<String>,
    /// `fit`.
    pub fit: Option<String>,
    /// `format`.
    pub format: Option<String>,
    /// `quality`.
    pub quality: Option<String>,
    /// `enlarge`.
    pub enlarge: Option<String>,
    /// `lossless`.
    pub lossless: Option<String>,
    /// `gravity`.
    pub gravity: Option<String>,
    /// `focus`.
    pub focus: Option<String>,
    /// `color`.
    pub color: Option<String>,
    /// `animated`.
    pub animated: Option<String>,
}

/// A variant parameter that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct VariantError {
    /// The parameter at fault (`sizes`, `fit`, `format`, `quality`, `enlarge`, `lossless`,
    /// `gravity`, `focus`, `color`, `animated`).
    pub parameter: &'static str,
    /// What is wrong with it. Never repeats the input: an item of `sizes` is named by its
    /// place.
    pub message: String,
}

pub(super) fn error(parameter: &'static str, message: impl Into<String>) -> VariantError {
    VariantError {
        parameter,
        message: message.into(),
    }
}

/// The defaults a request's `fit`, `format`, `quality`, `enlarge`, `lossless`, `gravity`,
/// `focus`, `color` and `animated` set for its boxes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    pub fit: Option<Fit>,
    pub format: Option<OutputFormat>,
    pub quality: Option<u8>,
    pub enlarge: Option<bool>,
    pub lossless: Option<bool>,
    pub gravity: Option<Gravity>,
    pub focus: Option<FocalPoint>,
    pub color: Option<ColorMode>,
    pub animated: Option<bool>,
}

/// A yes-or-no parameter: `true` or `false` in any case (Python's `str(True)` is `True`,
/// and generated clients send form fields so), or `1` or `0`.
pub(super) fn flag(
    parameter: &'static str,
    text: Option<&str>,
) -> Result<Option<bool>, VariantError> {
    text.map(|text| {
        if text.eq_ignore_ascii_case("true") || text == "1" {
            Ok(true)
        } else if text.eq_ignore_ascii_case("false") || text == "0" {
            Ok(false)
        } else {
            Err(error(parameter, "must be true or false"))
        }
    })
    .transpose()
}

impl Settings {
    /// Reads and checks each parameter of `params`.
    pub fn read(params: &VariantParams) -> Result<Self, VariantError> {
        let fit = params
            .fit
            .as_deref()
            .map(|text| {
                text.parse()
                    .map_err(|()| error("fit", "it is not one of contain, cover, fill"))
            })
            .transpose()?;
        let format = params
            .format
            .as_deref()
            .map(|text| {
                text.parse().map_err(|()| {
                    error(
                        "format",
                        "it is not one of auto, jpeg, png, webp, avif, gif",
                    )
                })
            })
            .transpose()?;
        let quality = params
            .quality
            .as_deref()
            .map(|text| {
                text.parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| error("quality", "must be a whole number from 1 to 100"))
            })
            .transpose()?;
        let mut gravity = params
            .gravity
            .as_deref()
            .map(|text| {
                text.parse().map_err(|()| {
                    let names: Vec<&str> = GRAVITIES.iter().map(|g| g.as_str()).collect();
                    error("gravity", format!("it is not one of {}", names.join(", ")))
                })
            })
            .transpose()?;
        let focus = params
            .focus
            .as_deref()
            .map(|text| {
                text.parse()
                    .map_err(|message: String| error("focus", message))
            })
            .transpose()?;
        match (gravity, focus) {
            (None, Some(_)) => gravity = Some(Gravity::Focus),
            (Some(Gravity::Focus), None) => {
                return Err(error("gravity", "focus needs its point: focus=x,y"));
            }
            (Some(other), Some(_)) if other != Gravity::Focus => {
                return Err(error("focus", "a focal point goes with gravity=focus only"));
            }
            _ => {}
        }
        let color = params
            .color
            .as_deref()
            .map(|text| {
                text.parse()
                    .map_err(|()| error("color", "it is not one of srgb, keep"))
            })
            .transpose()?;
        Ok(Self {
            fit,
            format,
            quality,
            enlarge: flag("enlarge", params.enlarge.as_deref())?,
            lossless: flag("lossless", params.lossless.as_deref())?,
            gravity,
            focus,
            color,
            animated: flag("animated", params.animated.as_deref())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_clients_write_them() {
        for (text, value) in [
            ("true", true),
            ("True", true),
            ("1", true),
            ("FALSE", false),
        ] {
            assert_eq!(flag("enlarge", Some(text)), Ok(Some(value)), "{text}");
        }
        assert_eq!(flag("lossless", None), Ok(None));
        assert_eq!(
            flag("lossless", Some("yes")).unwrap_err().parameter,
            "lossless"
        );
    }
}
