//! A [`Description`] read into a moxcms profile, or the reason it is taken for sRGB.
//!
//! Parsing is bounded: a profile is at most [`MAX_PROFILE_BYTES`] (the decoders hand over no
//! more than `limits.max_metadata_bytes` anyway), its lookup tables at most
//! [`MAX_CLUT_ENTRIES`] entries and its curves [`MAX_CURVE_ENTRIES`], whatever its tags
//! declare; moxcms reads every tag from the slice with checked offsets, so a profile that
//! lies about its sizes is refused, never followed.

use moxcms::{
    Chromaticity, CicpColorPrimaries, ColorPrimaries, ColorProfile, DataColorSpace, Layout,
    ParsingOptions, ProfileClass, RenderingIntent, ToneReprCurve, TransferCharacteristics,
    TransformOptions, XyY,
};

use super::Description;

/// The largest profile read (print profiles with big tables are 2 to 4 MiB).
pub const MAX_PROFILE_BYTES: usize = 8 << 20;
/// The most entries of a profile's colour lookup tables.
pub const MAX_CLUT_ENTRIES: usize = 1 << 21;
/// The most entries of one of its tone curves.
pub const MAX_CURVE_ENTRIES: usize = 1 << 16;

/// The profile `description` puts the pixels in, with its ICC bytes for embedding; `None`
/// when that is sRGB. `Err` is a warning: the description is unusable and sRGB is assumed.
pub fn read(
    description: &Description,
    grey: bool,
) -> Result<Option<(ColorProfile, Vec<u8>)>, String> {
    let profile = match description {
        Description::Unstated | Description::Srgb => return Ok(None),
        Description::Icc(bytes) => return icc(bytes, grey).map(|p| p.map(|p| (p, bytes.clone()))),
        Description::Cicp {
            primaries,
            transfer,
        } => cicp(*primaries, *transfer)?,
        Description::Gamma {
            gamma,
            chromaticities,
        } => gamma_and_chromaticities(*gamma, *chromaticities)?,
    };
    let Some(profile) = profile else {
        return Ok(None);
    };
    if grey {
        // CICP and gAMA/cHRM describe RGB; for grey pixels only the curve would matter,
        // and grey sources with such chunks are rare enough to be taken as they are.
        return Ok(None);
    }
    let icc = profile.encode().map_err(|error| {
        format!("the stated colours cannot be written as a profile ({error}); read as sRGB")
    })?;
    Ok(Some((profile, icc)))
}

/// An embedded ICC profile, parsed under the bounds and checked against the pixels.
fn icc(bytes: &[u8], grey: bool) -> Result<Option<ColorProfile>, String> {
    let options = ParsingOptions {
        max_profile_size: MAX_PROFILE_BYTES,
        max_allowed_clut_size: MAX_CLUT_ENTRIES,
        max_allowed_trc_size: MAX_CURVE_ENTRIES,
    };
    let profile = ColorProfile::new_from_slice_with_options(bytes, options).map_err(|error| {
        format!("the embedded ICC profile cannot be read ({error}); read as sRGB")
    })?;
    let profile = grey_to_xyz(profile);
    if matches!(
        profile.profile_class,
        ProfileClass::DeviceLink | ProfileClass::Abstract | ProfileClass::Named
    ) {
        return Err("the embedded ICC profile is not a colour space profile; read as sRGB".into());
    }
    let fits = match profile.color_space {
        DataColorSpace::Rgb => !grey,
        DataColorSpace::Gray => grey,
        _ => false,
    };
    if !fits {
        let kind = match profile.color_space {
            DataColorSpace::Rgb => "an RGB",
            DataColorSpace::Gray => "a grey",
            DataColorSpace::Cmyk => "a CMYK",
            _ => "another colour space's",
        };
        let pixels = if grey { "grey" } else { "colour" };
        return Err(format!(
            "the embedded ICC profile is {kind} profile on {pixels} pixels; read as sRGB"
        ));
    }
    if is_srgb(&profile) {
        return Ok(None);
    }
    // A profile that parses may still have no usable transform (a LUT profile without the
    // tables for its intent): find out now, once, rather than on every thumbnail.
    let layout = if grey { Layout::Gray } else { Layout::Rgb };
    profile
        .create_transform_8bit(
            layout,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options_for(&profile),
        )
        .map_err(|error| {
            format!("the embedded ICC profile cannot convert to sRGB ({error}); read as sRGB")
        })?;
    Ok(Some(profile))
}

/// A grey profile whose curve gives L* (a Lab connection space, as ICC allows for grey
/// profiles) rewritten as the same profile over XYZ, whose curve gives Y: the form moxcms
/// converts (LittleCMS reads the first the same way: L* = 100 × curve, a* = b* = 0).
fn grey_to_xyz(mut profile: ColorProfile) -> ColorProfile {
    if profile.color_space != DataColorSpace::Gray || profile.pcs != DataColorSpace::Lab {
        return profile;
    }
    let Some(evaluator) = profile
        .gray_trc
        .as_ref()
        .and_then(|c| c.make_linear_evaluator().ok())
    else {
        return profile;
    };
    let table = (0..4096)
        .map(|i| {
            let lightness = 100.0 * f64::from(evaluator.evaluate_value(i as f32 / 4095.0));
            let y = if lightness > 8.0 {
                ((lightness + 16.0) / 116.0).powi(3)
            } else {
                lightness / 903.3
            };
            (y.clamp(0.0, 1.0) * 65535.0).round() as u16
        })
        .collect();
    profile.gray_trc = Some(ToneReprCurve::Lut(table));
    profile.pcs = DataColorSpace::Xyz;
    profile
}

/// The transform options for a source profile: relative colorimetric intent, as libvips
/// converts by default (matrix-shaper profiles, nearly every RGB one, have no other), without
/// black point compensation.
pub fn options_for(_profile: &ColorProfile) -> TransformOptions {
    TransformOptions {
        rendering_intent: RenderingIntent::RelativeColorimetric,
        ..TransformOptions::default()
    }
}

/// Whether a profile is sRGB in all but name: sRGB's colorants and tone curves, to well under
/// a level of 8-bit output. The many sRGB profiles cameras and editors embed need no work.
fn is_srgb(profile: &ColorProfile) -> bool {
    if profile.color_space != DataColorSpace::Rgb || !profile.is_matrix_shaper() {
        return false;
    }
    let srgb = ColorProfile::new_srgb();
    let near = |a: moxcms::Xyzd, b: moxcms::Xyzd| {
        (a.x - b.x).abs() < 2e-3 && (a.y - b.y).abs() < 2e-3 && (a.z - b.z).abs() < 2e-3
    };
    if !(near(profile.red_colorant, srgb.red_colorant)
        && near(profile.green_colorant, srgb.green_colorant)
        && near(profile.blue_colorant, srgb.blue_colorant))
    {
        return false;
    }
    let reference = srgb
        .red_trc
        .as_ref()
        .and_then(|c| c.make_linear_evaluator().ok());
    let Some(reference) = reference else {
        return false;
    };
    [&profile.red_trc, &profile.green_trc, &profile.blue_trc]
        .into_iter()
        .all(|curve| {
            let Some(evaluator) = curve.as_ref().and_then(|c| c.make_linear_evaluator().ok())
            else {
                return false;
            };
            (0..=16).all(|step| {
                let value = step as f32 / 16.0;
                (evaluator.evaluate_value(value) - reference.evaluate_value(value)).abs() < 1e-3
            })
        })
}

/// CICP code points: sRGB's (BT.709 primaries, sRGB or BT.709-like curve) need no work;
/// others become a profile when moxcms knows them.
fn cicp(primaries: u8, transfer: u8) -> Result<Option<ColorProfile>, String> {
    let unknown = || "the stated CICP colours are not supported; read as sRGB".to_owned();
    let color_primaries = CicpColorPrimaries::try_from(primaries).map_err(|_| unknown())?;
    let transfer_characteristics =
        TransferCharacteristics::try_from(transfer).map_err(|_| unknown())?;
    // Unspecified (2) reads as sRGB's; so do the primaries.
    let color_primaries = match color_primaries {
        CicpColorPrimaries::Unspecified => CicpColorPrimaries::Bt709,
        other => other,
    };
    let transfer_characteristics = match transfer_characteristics {
        TransferCharacteristics::Unspecified => TransferCharacteristics::Srgb,
        other => other,
    };
    // BT.709, BT.601 and BT.2020 (10 and 12 bit) share one curve; displays and browsers
    // show them as sRGB-like content, as libheif's and Chrome's conversions do.
    let srgb_like = matches!(
        transfer_characteristics,
        TransferCharacteristics::Srgb
            | TransferCharacteristics::Bt709
            | TransferCharacteristics::Bt601
            | TransferCharacteristics::Bt202010bit
            | TransferCharacteristics::Bt202012bit
    );
    if color_primaries == CicpColorPrimaries::Bt709 && srgb_like {
        return Ok(None);
    }
    let mut profile = ColorProfile::new_srgb();
    let chromaticities: ColorPrimaries = color_primaries.try_into().map_err(|_| unknown())?;
    // Every H.273 set is white at D65 but DCI-P3's theatre white (11); XYZ (10) is none.
    let white = match color_primaries {
        CicpColorPrimaries::Xyz => return Err(unknown()),
        CicpColorPrimaries::Smpte431 => Chromaticity::new(0.314, 0.351),
        _ => Chromaticity::new(0.3127, 0.3290),
    };
    profile.update_rgb_colorimetry(white.to_xyyb(), chromaticities);
    let srgb = ColorProfile::new_srgb();
    let curve = match transfer_characteristics {
        _ if srgb_like => srgb.red_trc.clone(),
        TransferCharacteristics::Linear => Some(ToneReprCurve::Parametric(vec![1.0])),
        _ => return Err(unknown()),
    };
    profile.red_trc.clone_from(&curve);
    profile.green_trc.clone_from(&curve);
    profile.blue_trc = curve;
    // The transfer is now in the curves; the code points would override them.
    profile.cicp = None;
    Ok(Some(profile))
}

/// PNG's `gAMA` and `cHRM`: a pure power curve on the stated primaries (sRGB's when `cHRM` is
/// absent). A gamma of 1/2.2 on sRGB's primaries is within a level of sRGB and needs no work.
fn gamma_and_chromaticities(
    gamma: Option<f64>,
    chromaticities: Option<[f64; 8]>,
) -> Result<Option<ColorProfile>, String> {
    let bad = || "the stated gAMA or cHRM is out of range; read as sRGB".to_owned();
    let exponent = match gamma {
        None => None,
        Some(g) if g > 0.05 && g < 20.0 => Some(1.0 / g),
        Some(_) => return Err(bad()),
    };
    let near_srgb_curve = exponent.is_none_or(|e| (e - 2.2).abs() < 0.05);
    let srgb_primaries = chromaticities.is_none_or(|c| {
        const SRGB: [f64; 8] = [0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06];
        c.iter().zip(SRGB).all(|(a, b)| (a - b).abs() < 2e-3)
    });
    if near_srgb_curve && srgb_primaries {
        return Ok(None);
    }
    let mut profile = ColorProfile::new_srgb();
    if let Some(c) = chromaticities {
        if c.iter().any(|v| !(0.0..=1.0).contains(v))
            || c.iter().skip(1).step_by(2).any(|&y| y <= 0.0)
        {
            return Err(bad());
        }
        let xy = |i: usize| Chromaticity::new(c[i] as f32, c[i + 1] as f32);
        profile.update_rgb_colorimetry(
            XyY::new(c[0], c[1], 1.0),
            ColorPrimaries {
                red: xy(2),
                green: xy(4),
                blue: xy(6),
            },
        );
    }
    if let Some(exponent) = exponent {
        let curve = Some(ToneReprCurve::Parametric(vec![exponent as f32]));
        profile.red_trc.clone_from(&curve);
        profile.green_trc.clone_from(&curve);
        profile.blue_trc = curve;
    }
    profile.cicp = None;
    Ok(Some(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_profiles_need_no_work() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        assert!(read(&Description::Icc(srgb), false).unwrap().is_none());
        for transfer in [1, 2, 6, 13, 14, 15] {
            let cicp = Description::Cicp {
                primaries: 1,
                transfer,
            };
            assert!(read(&cicp, false).unwrap().is_none(), "{transfer}");
        }
        let png_default = Description::Gamma {
            gamma: Some(0.45455),
            chromaticities: None,
        };
        assert!(read(&png_default, false).unwrap().is_none());
    }

    #[test]
    fn wide_gamut_descriptions_become_profiles() {
        for description in [
            Description::Icc(ColorProfile::new_adobe_rgb().encode().unwrap()),
            Description::Icc(ColorProfile::new_pro_photo_rgb().encode().unwrap()),
            Description::Cicp {
                primaries: 12,
                transfer: 13,
            },
            Description::Cicp {
                primaries: 9,
                transfer: 1,
            },
            Description::Gamma {
                gamma: Some(1.0),
                chromaticities: None,
            },
        ] {
            let (profile, icc) = read(&description, false).unwrap().unwrap();
            assert_eq!(profile.color_space, DataColorSpace::Rgb, "{description:?}");
            assert!(
                ColorProfile::new_from_slice(&icc).is_ok(),
                "{description:?}"
            );
        }
    }

    #[test]
    fn absurd_values_are_warnings() {
        for description in [
            Description::Cicp {
                primaries: 200,
                transfer: 13,
            },
            Description::Cicp {
                primaries: 1,
                transfer: 16,
            },
            Description::Gamma {
                gamma: Some(0.0),
                chromaticities: None,
            },
            Description::Gamma {
                gamma: None,
                chromaticities: Some([0.3, 0.0, 0.6, 0.3, 0.3, 0.6, 0.1, 0.1]),
            },
        ] {
            assert!(read(&description, false).is_err(), "{description:?}");
        }
    }
}
