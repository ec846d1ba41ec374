//! Geometry: where each variant's pixels come from and what size it comes out.
//!
//! For a source of `w`×`h` (upright) and a variant's box `W`×`H` (either side may be open):
//!
//! - `contain` (or any fit with one side open): scaled by the smaller of `W/w` and `H/h`, so
//!   the whole image is inside the box, aspect ratio kept.
//! - `cover`: scaled by the larger, cropped to exactly the box; which part is kept is the
//!   variant's gravity: the centre, a compass point, or a focal point, placed here; for
//!   `attention` and `entropy` the crop is placed centred here and moved by
//!   [`crate::gravity`], which looks at the pixels.
//! - `fill`: stretched to exactly the box.
//!
//! Unless the variant says `enlarge`, nothing is scaled up: a `contain` thumbnail of a small
//! image is the image's own size; a `cover` one is the largest centre crop of the box's
//! aspect ratio at the image's own scale; a `fill` one is the box clipped to the image. An
//! open side never takes the output past `max_side` pixels. Every side is at least 1 pixel.

use common::variant::{Fit, Gravity, Variant};

/// A region of the source, as fractions of its width and height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// How one variant is made from a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The thumbnail's width.
    pub width: u32,
    /// The thumbnail's height.
    pub height: u32,
    /// The part of the source it shows; `None`: all of it.
    pub crop: Option<Crop>,
    /// The size the whole source is scaled to on the way (larger than the thumbnail when it
    /// is cropped): what a decoder that reduces while decoding must leave room for.
    pub scaled: (u32, u32),
}

/// `value` rounded, at least 1, at most `max`.
fn side(value: f64, max: f64) -> u32 {
    // The clamped value lies in 1..=u32::MAX, so the conversion is exact.
    value.round().clamp(1.0, max.max(1.0)) as u32
}

/// How `variant` is made from an upright `width`×`height` source.
pub fn plan(variant: &Variant, width: u32, height: u32, max_side: u32) -> Plan {
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let max = f64::from(max_side);
    let (bw, bh) = (variant.size.width, variant.size.height);
    match (variant.fit, bw, bh) {
        (Fit::Cover, Some(bw), Some(bh)) => {
            let (bw, bh) = (f64::from(bw), f64::from(bh));
            // The largest centred region of the box's aspect ratio.
            let (cw, ch) = if w * bh > h * bw {
                (h * bw / bh, h)
            } else {
                (w, w * bh / bw)
            };
            let (out_w, out_h) = if variant.enlarge || cw >= bw {
                (bw, bh)
            } else {
                (cw, ch)
            };
            // Where the crop sits in the room it has: 0 at the left (top), 1 at the right
            // (bottom); a focal point as near the crop's centre as the room allows.
            let (ax, ay) = match (variant.gravity, variant.focus) {
                (Gravity::Focus, Some(point)) => {
                    let (fx, fy) = point.fractions();
                    let place = |at: f64, whole: f64, part: f64| {
                        if whole - part <= 0.0 {
                            0.5
                        } else {
                            ((at * whole - part / 2.0) / (whole - part)).clamp(0.0, 1.0)
                        }
                    };
                    (place(fx, w, cw), place(fy, h, ch))
                }
                (gravity, _) => gravity.anchor().unwrap_or((0.5, 0.5)),
            };
            let crop = Crop {
                left: (w - cw) * ax / w,
                top: (h - ch) * ay / h,
                width: cw / w,
                height: ch / h,
            };
            let scale = out_w / cw;
            Plan {
                width: side(out_w, bw),
                height: side(out_h, bh),
                crop: (crop.width < 1.0 || crop.height < 1.0).then_some(crop),
                scaled: (side(w * scale, f64::MAX), side(h * scale, f64::MAX)),
            }
        }
        (Fit::Fill, Some(bw), Some(bh)) => {
            let (out_w, out_h) = if variant.enlarge {
                (bw, bh)
            } else {
                (bw.min(width.max(1)), bh.min(height.max(1)))
            };
            Plan {
                width: out_w,
                height: out_h,
                crop: None,
                scaled: (out_w, out_h),
            }
        }
        _ => {
            let scales = [bw.map(|b| f64::from(b) / w), bh.map(|b| f64::from(b) / h)];
            let mut scale = scales.into_iter().flatten().fold(f64::MAX, f64::min);
            if !variant.enlarge {
                scale = scale.min(1.0);
            }
            // An open side never goes past max_side.
            scale = scale.min(max / w).min(max / h);
            let out = (
                side(w * scale, f64::from(bw.unwrap_or(max_side))),
                side(h * scale, f64::from(bh.unwrap_or(max_side))),
            );
            Plan {
                width: out.0,
                height: out.1,
                crop: None,
                scaled: out,
            }
        }
    }
}

/// The size the whole source must be scaled to, at least, to serve every one of `variants`
/// (per axis, the largest of their [`Plan::scaled`]).
pub fn largest_scaled(variants: &[Variant], width: u32, height: u32, max_side: u32) -> (u32, u32) {
    variants
        .iter()
        .map(|variant| plan(variant, width, height, max_side).scaled)
        .fold((1, 1), |(w, h), (sw, sh)| (w.max(sw), h.max(sh)))
}

#[cfg(test)]
mod tests {
    use common::config::OutputFormat;

    use super::*;

    fn variant(size: &str, fit: Fit, enlarge: bool) -> Variant {
        Variant {
            name: size.to_owned(),
            size: size.parse().unwrap(),
            fit,
            format: OutputFormat::Auto,
            quality: 85,
            enlarge,
            lossless: false,
            gravity: Default::default(),
            focus: None,
            color: Default::default(),
            animated: false,
        }
    }

    fn out(size: &str, fit: Fit, enlarge: bool, source: (u32, u32)) -> (u32, u32) {
        let plan = plan(&variant(size, fit, enlarge), source.0, source.1, 4096);
        (plan.width, plan.height)
    }

    #[test]
    fn contain_keeps_the_aspect_inside_the_box() {
        assert_eq!(out("100x100", Fit::Contain, false, (4000, 3000)), (100, 75));
        assert_eq!(out("100x100", Fit::Contain, false, (3000, 4000)), (75, 100));
        assert_eq!(out("320x", Fit::Contain, false, (4000, 3000)), (320, 240));
        assert_eq!(out("x240", Fit::Contain, false, (4000, 3000)), (320, 240));
        assert_eq!(out("100x100", Fit::Contain, false, (10_000, 1)), (100, 1));
        assert_eq!(out("100x100", Fit::Contain, false, (50, 20)), (50, 20));
        assert_eq!(out("100x100", Fit::Contain, true, (50, 20)), (100, 40));
        // An open side is bounded by max_side, even when enlarging.
        assert_eq!(out("4096x", Fit::Contain, true, (1, 10_000)), (1, 4096));
    }

    #[test]
    fn cover_fills_the_box_exactly_and_crops_the_centre() {
        let plan = plan(&variant("400x300", Fit::Cover, false), 4000, 2000, 4096);
        assert_eq!((plan.width, plan.height), (400, 300));
        let crop = plan.crop.unwrap();
        // 4000×2000 at the box's 4:3 is the centre 2667×2000.
        assert!((crop.width - 2666.67 / 4000.0).abs() < 1e-3, "{crop:?}");
        assert!((crop.left - (1.0 - 2666.67 / 4000.0) / 2.0).abs() < 1e-3);
        assert_eq!((crop.top, crop.height), (0.0, 1.0));
        assert_eq!(plan.scaled, (600, 300));
        assert_eq!(out("100x100", Fit::Cover, false, (300, 200)), (100, 100));
        // Smaller than the box: the box's aspect at the image's own scale.
        assert_eq!(out("400x300", Fit::Cover, false, (200, 100)), (133, 100));
        assert_eq!(out("400x300", Fit::Cover, true, (200, 100)), (400, 300));
        // One side open: as contain.
        assert_eq!(out("320x", Fit::Cover, false, (4000, 3000)), (320, 240));
    }

    #[test]
    fn compass_gravities_and_focal_points_place_the_crop() {
        // 2000×1000 to a square: a 1000×1000 crop with 1000 px of room across.
        let left = |gravity: Gravity, focus: Option<&str>| {
            let variant = Variant {
                gravity,
                focus: focus.map(|f| f.parse().unwrap()),
                ..variant("100x100", Fit::Cover, false)
            };
            let crop = plan(&variant, 2000, 1000, 4096).crop.unwrap();
            assert_eq!((crop.top, crop.width, crop.height), (0.0, 0.5, 1.0));
            crop.left
        };
        assert_eq!(left(Gravity::Centre, None), 0.25);
        assert_eq!(left(Gravity::West, None), 0.0);
        assert_eq!(left(Gravity::NorthWest, None), 0.0);
        assert_eq!(left(Gravity::East, None), 0.5);
        assert_eq!(left(Gravity::SouthEast, None), 0.5);
        assert_eq!(left(Gravity::North, None), 0.25);
        // A focal point is centred when there is room, else the crop meets the edge.
        assert!((left(Gravity::Focus, Some("0.6,0.5")) - 0.35).abs() < 1e-9);
        assert_eq!(left(Gravity::Focus, Some("0.1,0.5")), 0.0);
        assert_eq!(left(Gravity::Focus, Some("1,0")), 0.5);
        // A tall image: the compass moves the crop down.
        let variant = Variant {
            gravity: Gravity::South,
            ..variant("100x100", Fit::Cover, false)
        };
        let crop = plan(&variant, 1000, 3000, 4096).crop.unwrap();
        assert!((crop.top - 2.0 / 3.0).abs() < 1e-9, "{crop:?}");
    }

    #[test]
    fn fill_stretches_to_the_box() {
        assert_eq!(out("100x100", Fit::Fill, false, (4000, 3000)), (100, 100));
        assert_eq!(out("100x100", Fit::Fill, false, (50, 300)), (50, 100));
        assert_eq!(out("100x100", Fit::Fill, true, (50, 300)), (100, 100));
    }

    #[test]
    fn the_largest_variant_sets_the_decode_size() {
        let variants = [
            variant("100x100", Fit::Contain, false),
            variant("400x300", Fit::Cover, false),
        ];
        assert_eq!(largest_scaled(&variants, 4000, 2000, 4096), (600, 300));
    }
}
