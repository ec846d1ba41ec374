//! Colours against LittleCMS: every colour-managed fixture (made by
//! `tests/fixtures/make_colour.py` from a real photograph and the profiles Debian ships)
//! through the worker's pipeline, compared in CIEDE2000 with LittleCMS's own conversion of
//! the same file to sRGB. Per fixture, at full size (the conversion alone) and as a 120 px
//! thumbnail (conversion and resampling): mean ΔE2000 at most 1.0, 99th percentile at most
//! 3.0. Then `color: keep`: the source's profile is embedded in every output format.

use common::config::{ColorMode, LimitsConfig, OutputFormat, PlaceholderKind, ThumbnailConfig};
use common::media::MediaType;
use common::message::JobVariant;
use common::variant::Variant;
use image::{ImageDecoder, RgbImage};

/// Mean and 99th-percentile ΔE2000 allowed against LittleCMS.
const MEAN: f64 = 1.0;
const P99: f64 = 3.0;

/// (fixture, its media type, its upright size)
const FIXTURES: &[(&str, MediaType)] = &[
    ("colour-a98.jpg", MediaType::Jpeg),
    ("colour-a98.tiff", MediaType::Tiff),
    ("colour-prophoto.jpg", MediaType::Jpeg),
    ("colour-p3.png", MediaType::Png),
    ("colour-p3.webp", MediaType::Webp),
    ("colour-p3.heic", MediaType::Heic),
    ("colour-p3.avif", MediaType::Avif),
    ("colour-cmyk.jpg", MediaType::Jpeg),
    ("colour-grey-lstar.jpg", MediaType::Jpeg),
    ("colour-16bit.png", MediaType::Png),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::read(path.join(name)).unwrap()
}

fn expected(name: &str) -> RgbImage {
    image::load_from_memory(&fixture(&format!("expected/colour/{name}.png")))
        .unwrap()
        .to_rgb8()
}

fn variant(size: &str, format: OutputFormat, color: ColorMode) -> JobVariant {
    JobVariant {
        index: 0,
        variant: Variant {
            name: size.to_owned(),
            size: size.parse().unwrap(),
            format,
            quality: 90,
            color,
            ..Variant::default_for(&ThumbnailConfig::default())
        },
    }
}

/// The thumbnail of `bytes` for `variant`, its bytes.
fn made(bytes: &[u8], media_type: MediaType, variant: JobVariant) -> Vec<u8> {
    let mut made = worker::thumbnail::make(
        bytes,
        media_type,
        &[variant],
        &LimitsConfig::default(),
        &[PlaceholderKind::DominantColor],
    )
    .unwrap();
    made.variants.remove(0).1.unwrap().bytes
}

/// Mean and 99th percentile of the per-pixel ΔE2000 between two pictures of one size.
fn delta_e(ours: &RgbImage, reference: &RgbImage) -> (f64, f64) {
    assert_eq!(ours.dimensions(), reference.dimensions());
    let mut errors: Vec<f64> = ours
        .pixels()
        .zip(reference.pixels())
        .map(|(a, b)| {
            let a = rgb::RGB8::new(a[0], a[1], a[2]);
            let b = rgb::RGB8::new(b[0], b[1], b[2]);
            f64::from(empfindung::cie00::diff(a, b))
        })
        .collect();
    errors.sort_by(f64::total_cmp);
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    let p99 = errors[errors.len() * 99 / 100];
    (mean, p99)
}

#[test]
fn every_colour_managed_fixture_matches_littlecms() {
    let mut failures = Vec::new();
    for &(name, media_type) in FIXTURES {
        if !worker::decode::reads(media_type) {
            eprintln!("{name}: not read by this build");
            continue;
        }
        let bytes = fixture(name);
        for (size, reference) in [
            ("320x200", name.to_owned()),
            ("120x120", format!("{name}-thumb")),
        ] {
            let png = made(
                &bytes,
                media_type,
                variant(size, OutputFormat::Png, ColorMode::Srgb),
            );
            let ours = image::load_from_memory(&png).unwrap().to_rgb8();
            let (mean, p99) = delta_e(&ours, &expected(&reference));
            eprintln!("{name} {size}: mean ΔE2000 {mean:.3}, p99 {p99:.3}");
            if mean > MEAN || p99 > P99 {
                failures.push(format!("{name} {size}: mean {mean:.3}, p99 {p99:.3}"));
            }
        }
    }
    assert!(failures.is_empty(), "over the bounds: {failures:#?}");
}

#[test]
fn without_conversion_the_colours_are_far_off() {
    // The measure can fail: the same Adobe RGB file kept as it is, read as sRGB, is far
    // from LittleCMS's sRGB (the error colour management removes).
    let bytes = fixture("colour-a98.jpg");
    let jpeg = made(
        &bytes,
        MediaType::Jpeg,
        variant("320x200", OutputFormat::Png, ColorMode::Keep),
    );
    let ours = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let (mean, _) = delta_e(&ours, &expected("colour-a98.jpg"));
    assert!(mean > 2.0, "mean ΔE2000 {mean:.3}");
}

/// The ICC profile an output carries, read by `image`'s decoders.
fn embedded(bytes: &[u8]) -> Option<Vec<u8>> {
    let format = image::guess_format(bytes).unwrap();
    let mut decoder = image::ImageReader::with_format(std::io::Cursor::new(bytes), format)
        .into_decoder()
        .unwrap();
    decoder.icc_profile().unwrap()
}

#[test]
fn keep_embeds_the_source_profile_in_every_format() {
    let bytes = fixture("colour-a98.jpg");
    let a98 = std::fs::read("/usr/share/color/icc/ghostscript/a98.icc")
        .unwrap_or_else(|_| embedded(&bytes).unwrap());
    let mut formats = vec![OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp];
    if worker::encode::supports(OutputFormat::Avif) {
        formats.push(OutputFormat::Avif);
    }
    for format in formats {
        let mut job = variant("120x120", format, ColorMode::Keep);
        job.variant.lossless = !cfg!(feature = "libwebp");
        let out = made(&bytes, MediaType::Jpeg, job);
        let icc = if format == OutputFormat::Avif {
            // `image` reads no AVIF here: the `colr` box of type `prof` holds the profile.
            let at = out
                .windows(8)
                .position(|w| w == b"colrprof")
                .expect("a colr box");
            Some(out[at + 8..at + 8 + a98.len()].to_vec())
        } else {
            embedded(&out)
        };
        assert_eq!(icc.as_deref(), Some(&a98[..]), "{format:?}");
    }
}

#[test]
fn srgb_output_is_tagged_as_srgb() {
    let bytes = fixture("colour-p3.png");
    let png = made(
        &bytes,
        MediaType::Png,
        variant("120x120", OutputFormat::Png, ColorMode::Srgb),
    );
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let reader = decoder.read_info().unwrap();
    assert!(reader.info().srgb.is_some(), "an sRGB chunk");
    assert!(reader.info().icc_profile.is_none());
    // JPEG and WebP say sRGB by carrying no profile.
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let mut job = variant("120x120", format, ColorMode::Srgb);
        job.variant.lossless = !cfg!(feature = "libwebp");
        assert_eq!(
            embedded(&made(&bytes, MediaType::Png, job)),
            None,
            "{format:?}"
        );
    }
}
