//! Variants: the thumbnails a client asks for, and how their parameters are read.
//!
//! A [`Variant`] is one thumbnail to make from an upload: a box ([`Size`], either side may be
//! left open), how the image meets the box ([`Fit`]), the output format and quality, and
//! whether a small image may be enlarged. An upload names its variants with the parameters
//! of [`VariantParams`] (query parameters of a base64 upload, members of a JSON envelope):
//!
//! - `sizes=100x100,400x300,320x,card`: boxes (`W x H`, an empty side means "any") or the
//!   names of presets from `thumbnail.presets`; default: the configured
//!   `thumbnail.width`×`thumbnail.height`.
//! - `fit=contain|cover|fill`, `format=auto|jpeg|png|webp|avif|gif`, `quality=1..100`,
//!   `enlarge=true|false`, `lossless=true|false` (WebP: lossless instead of lossy at
//!   `quality`), `gravity=centre|north|…|attention|entropy|focus` and `focus=x,y` (which
//!   part a `cover` crop keeps, [`placement`]), `color=srgb|keep` (thumbnails converted to
//!   sRGB, or keeping the source's profile), `animated=true|false` (an animated GIF or WebP
//!   stays animated, a video gives a short animated preview; WebP or GIF output only): for
//!   every box given as `W x H`, and for presets that leave them unset.
//!
//! [`parse`] checks all of it against the limits (`limits.max_thumbnail_side`,
//! `limits.max_variants`) and names the parameter at fault in its error.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{ColorMode, LimitsConfig, OutputFormat, ThumbnailConfig};

mod params;
mod placement;
mod size;

use params::{Settings, error};
pub use params::{VariantError, VariantParams};
pub use placement::{Fit, FocalPoint, GRAVITIES, Gravity};
pub use size::Size;

/// One thumbnail to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Variant {
    /// Its name in the record and in `/images/{id}/thumbnails/{name}`: the size as asked
    /// (`400x300`) or the preset's name.
    pub name: String,
    /// The box.
    pub size: Size,
    /// How the image meets the box.
    pub fit: Fit,
    /// The output format.
    pub format: OutputFormat,
    /// Quality of lossy output, 1–100.
    pub quality: u8,
    /// Whether an image smaller than the box is enlarged.
    pub enlarge: bool,
    /// WebP only: lossless, instead of lossy at `quality`.
    #[serde(default)]
    pub lossless: bool,
    /// `cover` only: which part of the image the crop keeps.
    #[serde(default)]
    pub gravity: Gravity,
    /// The point `gravity: focus` keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<FocalPoint>,
    /// Converted to sRGB (`srgb`), or keeping the source's colours and profile (`keep`).
    #[serde(default)]
    pub color: ColorMode,
    /// An animated source (GIF, WebP) gives an animation of every frame, a video a short
    /// animated preview; else the first frame (or the poster). WebP, GIF or `auto` only.
    /// Absent (records from before animations, and still variants): false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub animated: bool,
}

impl Variant {
    /// The variant the configuration makes when an upload names none.
    pub fn default_for(config: &ThumbnailConfig) -> Self {
        let size = Size {
            width: Some(config.width),
            height: Some(config.height),
        };
        Self {
            name: size.to_string(),
            size,
            fit: Fit::Contain,
            format: config.format,
            quality: config.jpeg_quality,
            enlarge: false,
            lossless: config.lossless,
            gravity: Gravity::Centre,
            focus: None,
            color: config.color,
            animated: config.animated,
        }
    }

    /// Whether `other` makes the same pixels and bytes as this one, whatever its name.
    pub fn same_output(&self, other: &Variant) -> bool {
        let settings = |v: &Variant| {
            (
                v.size, v.fit, v.format, v.quality, v.enlarge, v.lossless, v.gravity, v.focus,
                v.color, v.animated,
            )
        };
        settings(self) == settings(other)
    }
}

/// A named variant of `thumbnail.presets`: a size and, optionally, the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// The box.
    pub size: Size,
    /// How the image meets the box; unset: the request's `fit`.
    pub fit: Option<Fit>,
    /// The output format; unset: the request's `format`.
    pub format: Option<OutputFormat>,
    /// Quality of lossy output; unset: the request's `quality`.
    pub quality: Option<u8>,
    /// Whether to enlarge; unset: the request's `enlarge`.
    pub enlarge: Option<bool>,
    /// WebP only, lossless; unset: the request's `lossless`.
    pub lossless: Option<bool>,
    /// Which part a `cover` crop keeps; unset: the request's `gravity`.
    #[serde(default)]
    pub gravity: Option<Gravity>,
    /// The focal point of `gravity: focus`; unset: the request's `focus`.
    #[serde(default)]
    pub focus: Option<FocalPoint>,
    /// `srgb` or `keep`; unset: the request's `color`.
    #[serde(default)]
    pub color: Option<ColorMode>,
    /// Animated output; unset: the request's `animated`.
    #[serde(default)]
    pub animated: Option<bool>,
}

/// Whether `name` may name a preset: 1 to 32 of `a-z`, `0-9`, `_`, `-`, starting with a
/// letter (so that it never reads as a size).
pub fn is_preset_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Checks one box against `limits.max_thumbnail_side`.
pub fn check_size(size: Size, limits: &LimitsConfig) -> Result<(), VariantError> {
    let max = limits.max_thumbnail_side;
    if size.width.max(size.height).unwrap_or(0) > max {
        return Err(error(
            "sizes",
            format!("{size} has a side over the limit of {max} pixels"),
        ));
    }
    Ok(())
}

/// Refuses an animated variant in a format that cannot animate (JPEG, PNG, AVIF).
fn check_animated(variant: &Variant) -> Result<(), VariantError> {
    if variant.animated && !variant.format.animates() {
        return Err(error(
            "animated",
            format!(
                "`{}` is {}: an animation is written as WebP or GIF (format auto, webp or gif)",
                variant.name,
                variant.format.as_str()
            ),
        ));
    }
    Ok(())
}

/// Refuses a variant in a format this build cannot write (`can_write` says which it can,
/// and why not: AVIF and lossy WebP depend on how the worker was built).
pub fn check_formats(
    variants: &[Variant],
    can_write: impl Fn(&Variant) -> Result<(), &'static str>,
) -> Result<(), VariantError> {
    for variant in variants {
        if let Err(why) = can_write(variant) {
            return Err(error(
                "format",
                format!("{} output {why}", variant.format.as_str()),
            ));
        }
    }
    Ok(())
}

/// The variants a request asks for, checked; the configured default when it names none.
pub fn parse(
    params: &VariantParams,
    config: &ThumbnailConfig,
    limits: &LimitsConfig,
) -> Result<Vec<Variant>, VariantError> {
    let settings = Settings::read(params)?;
    let items: Vec<&str> = match params.sizes.as_deref() {
        None => Vec::new(),
        Some(text) => text.split(',').map(str::trim).collect(),
    };
    if items.len() > limits.max_variants {
        return Err(error(
            "sizes",
            format!(
                "{} variants asked for, over the limit of {}",
                items.len(),
                limits.max_variants
            ),
        ));
    }
    let mut variants: Vec<Variant> = Vec::with_capacity(items.len().max(1));
    if items.is_empty() {
        let default = Variant::default_for(config);
        variants.push(Variant {
            fit: settings.fit.unwrap_or(default.fit),
            format: settings.format.unwrap_or(default.format),
            quality: settings.quality.unwrap_or(default.quality),
            enlarge: settings.enlarge.unwrap_or(default.enlarge),
            lossless: settings.lossless.unwrap_or(default.lossless),
            gravity: settings.gravity.unwrap_or(default.gravity),
            focus: settings.focus,
            color: settings.color.unwrap_or(default.color),
            animated: settings.animated.unwrap_or(default.animated),
            ..default
        });
        check_animated(&variants[0])?;
    }
    for (place, item) in items.into_iter().enumerate() {
        let place = place + 1;
        let variant = if let Some(preset) = config.presets.get(item) {
            Variant {
                name: item.to_owned(),
                size: preset.size,
                fit: preset.fit.or(settings.fit).unwrap_or_default(),
                format: preset.format.or(settings.format).unwrap_or(config.format),
                quality: preset
                    .quality
                    .or(settings.quality)
                    .unwrap_or(config.jpeg_quality),
                enlarge: preset.enlarge.or(settings.enlarge).unwrap_or(false),
                lossless: preset
                    .lossless
                    .or(settings.lossless)
                    .unwrap_or(config.lossless),
                gravity: preset.gravity.or(settings.gravity).unwrap_or_default(),
                focus: preset.focus.or(settings.focus),
                color: preset.color.or(settings.color).unwrap_or(config.color),
                animated: preset
                    .animated
                    .or(settings.animated)
                    .unwrap_or(config.animated),
            }
        } else if item.contains(['x', 'X']) {
            let size: Size = item
                .parse()
                .map_err(|message: String| error("sizes", format!("item {place}: {message}")))?;
            Variant {
                name: size.to_string(),
                size,
                fit: settings.fit.unwrap_or_default(),
                format: settings.format.unwrap_or(config.format),
                quality: settings.quality.unwrap_or(config.jpeg_quality),
                enlarge: settings.enlarge.unwrap_or(false),
                lossless: settings.lossless.unwrap_or(config.lossless),
                gravity: settings.gravity.unwrap_or_default(),
                focus: settings.focus,
                color: settings.color.unwrap_or(config.color),
                animated: settings.animated.unwrap_or(config.animated),
            }
        } else if item.is_empty() {
            return Err(error("sizes", "an empty item between commas"));
        } else {
            let mut known: Vec<&str> = config.presets.keys().map(String::as_str).collect();
            known.sort_unstable();
            let known = if known.is_empty() {
                "none are configured".to_owned()
            } else {
                known.join(", ")
            };
            return Err(error(
                "sizes",
                format!("item {place} is neither a size nor a preset (presets: {known})"),
            ));
        };
        if variant.gravity == Gravity::Focus && variant.focus.is_none() {
            return Err(error(
                "focus",
                format!("`{}` has gravity focus and no focal point", variant.name),
            ));
        }
        check_size(variant.size, limits)?;
        check_animated(&variant)?;
        if variants.iter().any(|v| v.name == variant.name) {
            return Err(error(
                "sizes",
                format!("`{}` is asked for twice", variant.name),
            ));
        }
        variants.push(variant);
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sizes: &str) -> VariantParams {
        VariantParams {
            sizes: Some(sizes.to_owned()),
            ..VariantParams::default()
        }
    }

    fn config() -> ThumbnailConfig {
        let mut config = ThumbnailConfig::default();
        config.presets.insert(
            "card".to_owned(),
            Preset {
                size: "400x300".parse().unwrap(),
                fit: Some(Fit::Cover),
                format: Some(OutputFormat::Webp),
                quality: None,
                enlarge: None,
                lossless: None,
                gravity: None,
                focus: None,
                color: None,
                animated: None,
            },
        );
        config
    }

    #[test]
    fn sizes_parse_and_print_alike() {
        for text in ["100x100", "320x", "x240", "4096x1"] {
            assert_eq!(text.parse::<Size>().unwrap().to_string(), text);
        }
        assert_eq!("10X20".parse::<Size>().unwrap().to_string(), "10x20");
        for bad in [
            "x",
            "",
            "100",
            "0x10",
            "-1x10",
            "+1x2",
            "1.5x2",
            "1 x2",
            "99999999999x1",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn no_sizes_is_the_configured_default() {
        let variants = parse(
            &VariantParams::default(),
            &config(),
            &LimitsConfig::default(),
        )
        .unwrap();
        assert_eq!(variants, vec![Variant::default_for(&config())]);
        assert_eq!(variants[0].name, "100x100");
    }

    #[test]
    fn boxes_take_the_request_settings_and_presets_their_own() {
        let request = VariantParams {
            fit: Some("fill".into()),
            quality: Some("70".into()),
            ..params("200x100, card,320x")
        };
        let variants = parse(&request, &config(), &LimitsConfig::default()).unwrap();
        let names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["200x100", "card", "320x"]);
        assert_eq!(variants[0].fit, Fit::Fill);
        assert_eq!(variants[0].quality, 70);
        assert_eq!(variants[1].fit, Fit::Cover, "the preset's own fit wins");
        assert_eq!(variants[1].format, OutputFormat::Webp);
        assert_eq!(variants[1].quality, 70, "the preset leaves quality open");
        assert_eq!(variants[2].size.height, None);
    }

    #[test]
    fn animated_comes_from_the_request_the_preset_or_the_configuration() {
        let mut config = config();
        config.presets.insert(
            "moving".to_owned(),
            Preset {
                size: "200x200".parse().unwrap(),
                fit: None,
                format: Some(OutputFormat::Gif),
                quality: None,
                enlarge: None,
                lossless: None,
                gravity: None,
                focus: None,
                color: None,
                animated: Some(true),
            },
        );
        let limits = LimitsConfig::default();
        let variants = parse(&params("100x100,moving"), &config, &limits).unwrap();
        assert_eq!(
            (variants[0].animated, variants[1].animated),
            (false, true),
            "the preset's own"
        );
        let request = VariantParams {
            animated: Some("true".into()),
            ..params("100x100,card")
        };
        let variants = parse(&request, &config, &limits).unwrap();
        assert!(variants.iter().all(|v| v.animated), "the request's");
        config.animated = true;
        let variants = parse(&VariantParams::default(), &config, &limits).unwrap();
        assert!(variants[0].animated, "the configuration's default");
        let request = VariantParams {
            animated: Some("false".into()),
            ..VariantParams::default()
        };
        assert!(!parse(&request, &config, &limits).unwrap()[0].animated);
        // A preset that fixes a still format refuses an animated request, naming it.
        config.presets.get_mut("card").unwrap().format = Some(OutputFormat::Png);
        let request = VariantParams {
            animated: Some("true".into()),
            ..params("card")
        };
        assert_eq!(
            parse(&request, &config, &limits).unwrap_err().parameter,
            "animated"
        );
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let limits = LimitsConfig::default();
        let cases = [
            (params("abc"), "sizes"),
            (params("100x100,nope"), "sizes"),
            (params("100y100"), "sizes"),
            (params("5000x10"), "sizes"),
            (params("10x10,10x10"), "sizes"),
            (params("1x1,2x2,3x3,4x4,5x5,6x6,7x7,8x8,9x9"), "sizes"),
            (params("1x1,,2x2"), "sizes"),
            (
                VariantParams {
                    fit: Some("crop".into()),
                    ..VariantParams::default()
                },
                "fit",
            ),
            (
                VariantParams {
                    format: Some("bmp".into()),
                    ..VariantParams::default()
                },
                "format",
            ),
            (
                VariantParams {
                    quality: Some("101".into()),
                    ..VariantParams::default()
                },
                "quality",
            ),
            (
                VariantParams {
                    enlarge: Some("yes".into()),
                    ..VariantParams::default()
                },
                "enlarge",
            ),
            (
                VariantParams {
                    lossless: Some("maybe".into()),
                    ..VariantParams::default()
                },
                "lossless",
            ),
            (
                VariantParams {
                    animated: Some("yes".into()),
                    ..VariantParams::default()
                },
                "animated",
            ),
            (
                VariantParams {
                    animated: Some("true".into()),
                    format: Some("jpeg".into()),
                    ..VariantParams::default()
                },
                "animated",
            ),
        ];
        for (request, parameter) in cases {
            let error = parse(&request, &config(), &limits).unwrap_err();
            assert_eq!(error.parameter, parameter, "{request:?}: {error}");
        }
    }

    #[test]
    fn errors_never_echo_much_of_the_input() {
        let long = format!("{}x1", "9".repeat(5000));
        let error = parse(&params(&long), &config(), &LimitsConfig::default()).unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
        let hidden = parse(&params("\u{202e}evil"), &config(), &LimitsConfig::default())
            .unwrap_err()
            .to_string();
        assert!(!hidden.contains('\u{202e}'), "{hidden}");
    }

    #[test]
    fn preset_names_never_read_as_sizes() {
        assert!(is_preset_name("card"));
        assert!(is_preset_name("small-2x"));
        for bad in ["", "2x", "Card", "a b", &"a".repeat(33)] {
            assert!(!is_preset_name(bad), "{bad:?}");
        }
    }
}
