//! Every format and variant in the fixtures, end to end through a real gateway: upload,
//! wait, fetch the thumbnail, and check it on its pixels against Pillow's reference thumbnail
//! of the same file (made by `tests/fixtures/make.py`).

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::config::{LimitsConfig, OutputFormat};
use common::media::MediaType;
use support::{Backend, Gateway, difference_from_expected, fixture, media_type_of};

/// Mean absolute difference (0–255 per channel) allowed between our thumbnail and Pillow's.
/// Different Lanczos implementations and JPEG re-encoding stay well under it; a wrong frame,
/// orientation, channel order or colour conversion is far over it.
const TOLERANCE: f64 = 8.0;

/// (fixture, source width and height after orientation, thumbnail media type)
const CASES: &[(&str, u32, u32, &str)] = &[
    ("jpeg-baseline.jpg", 800, 500, "image/jpeg"),
    ("jpeg-progressive.jpg", 640, 481, "image/jpeg"),
    ("jpeg-cmyk.jpg", 400, 250, "image/jpeg"),
    ("jpeg-grayscale.jpg", 400, 250, "image/jpeg"),
    ("jpeg-exif-orientation-3.jpg", 300, 400, "image/jpeg"),
    ("jpeg-exif-orientation-6.jpg", 300, 400, "image/jpeg"),
    ("jpeg-exif-orientation-8.jpg", 300, 400, "image/jpeg"),
    ("png-rgb.png", 600, 375, "image/jpeg"),
    ("png-rgba.png", 535, 300, "image/png"),
    ("png-gray.png", 480, 300, "image/jpeg"),
    ("png-gray-alpha.png", 480, 300, "image/png"),
    ("png-palette.png", 480, 300, "image/jpeg"),
    ("png-16bit-rgb.png", 320, 200, "image/jpeg"),
    ("png-16bit-gray.png", 320, 200, "image/jpeg"),
    ("png-interlaced.png", 320, 200, "image/jpeg"),
    ("gif-animated.gif", 320, 200, "image/jpeg"),
    ("webp-lossy.webp", 600, 375, "image/jpeg"),
    ("webp-alpha.webp", 400, 224, "image/png"),
    ("tiff-lzw.tiff", 480, 300, "image/jpeg"),
    ("bmp-24.bmp", 240, 150, "image/jpeg"),
    ("jxl-lossy.jxl", 600, 375, "image/jpeg"),
    ("jxl-alpha.jxl", 535, 300, "image/png"),
    ("jxl-16bit.jxl", 320, 200, "image/jpeg"),
    ("jxl-orientation-6.jxl", 300, 400, "image/jpeg"),
    ("small.png", 40, 30, "image/jpeg"),
    ("strip.jpg", 1000, 8, "image/jpeg"),
];

/// HEIC and AVIF, read with the `heif` feature: alpha, 10- and 12-bit, and an `irot` turn.
const HEIF_CASES: &[(&str, u32, u32, &str)] = &[
    ("heic-rgb.heic", 600, 375, "image/jpeg"),
    ("heic-alpha.heic", 535, 300, "image/png"),
    ("heic-12bit.heic", 320, 200, "image/jpeg"),
    ("avif-rgb.avif", 600, 375, "image/jpeg"),
    ("avif-alpha.avif", 535, 300, "image/png"),
    ("avif-10bit.avif", 320, 200, "image/jpeg"),
    ("avif-12bit.avif", 320, 200, "image/jpeg"),
    ("avif-irot.avif", 375, 600, "image/jpeg"),
];

/// Every case this build reads.
fn cases() -> Vec<(&'static str, u32, u32, &'static str)> {
    let mut cases = CASES.to_vec();
    if cfg!(feature = "heif") {
        cases.extend_from_slice(HEIF_CASES);
    }
    cases
}

/// The size a `width`×`height` image must have once fitted in 100×100.
fn fitted(width: u32, height: u32) -> (u32, u32) {
    if width <= 100 && height <= 100 {
        return (width, height);
    }
    let scale = f64::min(100.0 / f64::from(width), 100.0 / f64::from(height));
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, 100);
    (side(width), side(height))
}

async fn every_format_becomes_a_faithful_thumbnail(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let cases = cases();
    let mut ids = Vec::new();
    for (name, ..) in &cases {
        ids.push(gateway.upload_fixture(name).await);
    }
    for ((name, width, height, thumbnail_type), id) in cases.iter().zip(&ids) {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{name}: {record}");
        assert_eq!(record["code"], 200, "{name}");
        assert_eq!(record["service"], "worker", "{name}");
        assert_eq!(
            (record["width"].as_u64(), record["height"].as_u64()),
            (Some(u64::from(*width)), Some(u64::from(*height))),
            "{name}: source size after orientation"
        );
        let (tw, th) = fitted(*width, *height);
        let thumb = &record["thumbnail"];
        assert_eq!(thumb["media_type"], *thumbnail_type, "{name}");
        assert_eq!(
            (thumb["width"].as_u64(), thumb["height"].as_u64()),
            (Some(u64::from(tw)), Some(u64::from(th))),
            "{name}: fit in 100×100, aspect kept, never upscaled"
        );

        let answer = gateway.thumbnail(id).await;
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some(*thumbnail_type)
        );
        assert_eq!(
            thumb["size"].as_u64(),
            Some(answer.body.len() as u64),
            "{name}"
        );
        let image = image::load_from_memory(&answer.body).unwrap();
        assert_eq!(
            (image.width(), image.height()),
            (tw, th),
            "{name}: decoded size"
        );
        let difference = difference_from_expected(&image, name);
        assert!(
            difference < TOLERANCE,
            "{name}: differs from Pillow's thumbnail by {difference:.2} per channel"
        );
    }
}

async fn exif_orientation_is_applied_on_the_pixels(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    for tag in [3, 6, 8] {
        let name = format!("jpeg-exif-orientation-{tag}.jpg");
        let id = gateway.upload_fixture(&name).await;
        assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
        let image = image::load_from_memory(&gateway.thumbnail(&id).await.body)
            .unwrap()
            .to_rgb8();
        assert_eq!(
            image.dimensions(),
            (75, 100),
            "{name}: portrait once upright"
        );
        // The upright source has a red block in its top-left quarter, and only there.
        let red = |x: u32, y: u32| {
            let p = image.get_pixel(x, y);
            p[0] > 200 && p[1] < 60 && p[2] < 60
        };
        assert!(red(5, 5), "{name}: top-left is red");
        assert!(
            !red(70, 5) && !red(5, 95) && !red(70, 95),
            "{name}: other corners are not"
        );
    }
}

async fn alpha_is_kept(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    for name in ["png-rgba.png", "webp-alpha.webp", "png-gray-alpha.png"] {
        let id = gateway.upload_fixture(name).await;
        assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
        let image = image::load_from_memory(&gateway.thumbnail(&id).await.body).unwrap();
        assert!(image.color().has_alpha(), "{name}");
        let source = image::load_from_memory(&fixture(name)).unwrap().to_rgba8();
        let ours = image.to_rgba8();
        let alpha_range = |img: &image::RgbaImage| {
            img.pixels()
                .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[3]), hi.max(p[3])))
        };
        let (source_lo, source_hi) = alpha_range(&source);
        let (lo, hi) = alpha_range(&ours);
        assert!(source_lo < 255, "{name}: the fixture has transparency");
        assert!(
            lo.abs_diff(source_lo) <= 8 && hi.abs_diff(source_hi) <= 8,
            "{name}: alpha {lo}..{hi}, source {source_lo}..{source_hi}"
        );
    }
}

async fn the_first_gif_frame_is_used(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let id = gateway.upload_fixture("gif-animated.gif").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    let image = image::load_from_memory(&gateway.thumbnail(&id).await.body)
        .unwrap()
        .to_rgb8();
    // The second frame is solid blue; the first is a photograph.
    let blue = image
        .pixels()
        .filter(|p| p[2] > 200 && p[0] < 50 && p[1] < 50)
        .count();
    assert_eq!(blue, 0);
}

async fn output_format_follows_the_configuration(backend: Backend) {
    for (format, media_type) in [
        ("png", "image/png"),
        ("webp", "image/webp"),
        ("jpeg", "image/jpeg"),
    ] {
        // The pure-Rust build writes lossless WebP only.
        let lossless = !cfg!(feature = "libwebp");
        let gateway = Gateway::start(
            backend,
            &format!(
                "thumbnail: {{format: {format}, width: 64, height: 48, lossless: {lossless}}}"
            ),
        )
        .await;
        let id = gateway.upload_fixture("png-rgba.png").await;
        let record = gateway.wait_final(&id).await;
        assert_eq!(record["thumbnail"]["media_type"], media_type, "{record}");
        let answer = gateway.thumbnail(&id).await;
        let image = image::load_from_memory(&answer.body).unwrap();
        // 535×300 in 64×48: width bound.
        assert_eq!((image.width(), image.height()), (64, 36));
        assert_eq!(image.color().has_alpha(), format != "jpeg", "{format}");
    }
}

/// `format=avif` (the `heif` feature): AVIF thumbnails, alpha kept, faithful to Pillow's
/// reference within the same tolerance as the other formats.
async fn avif_output_on_request(backend: Backend) {
    if !cfg!(feature = "heif") {
        return;
    }
    let gateway = Gateway::start(backend, "").await;
    for (name, width, height) in [("jpeg-baseline.jpg", 800, 500), ("png-rgba.png", 535, 300)] {
        let answer = gateway
            .post_json(&serde_json::json!({
                "data": STANDARD.encode(fixture(name)),
                "media_type": media_type_of(name),
                "format": "avif",
                "quality": 80,
            }))
            .await;
        assert_eq!(answer.status, 202, "{name}: {}", answer.json());
        let id = answer.media_id();
        let record = gateway.wait_final(&id).await;
        assert_eq!(record["state"], "Completed", "{name}: {record}");
        assert_eq!(record["thumbnail"]["media_type"], "image/avif", "{name}");
        let answer = gateway.thumbnail(&id).await;
        assert_eq!(answer.header("content-type").as_deref(), Some("image/avif"));
        let decoded = worker::decode::decode(
            &answer.body,
            MediaType::Avif,
            &LimitsConfig::default(),
            &|w, h| (w, h),
        )
        .unwrap()
        .image;
        assert_eq!((decoded.width(), decoded.height()), fitted(width, height));
        assert_eq!(
            decoded.color().has_alpha(),
            name.ends_with(".png"),
            "{name}"
        );
        let difference = difference_from_expected(&decoded, name);
        assert!(
            difference < TOLERANCE,
            "{name}: differs from Pillow's thumbnail by {difference:.2} per channel"
        );
    }
}

/// Without the `heif` feature, a variant in AVIF is refused at the door (400, naming the
/// parameter and the feature), on upload and on demand.
#[tokio::test]
async fn avif_output_needs_its_feature() {
    if worker::encode::supports(OutputFormat::Avif) {
        return;
    }
    let gateway = Gateway::start_with_queue(None, "").await;
    let name = "jpeg-baseline.jpg";
    let answer = gateway
        .post_json(&serde_json::json!({
            "data": STANDARD.encode(fixture(name)),
            "media_type": media_type_of(name),
            "format": "avif",
        }))
        .await;
    answer.assert_error(400, "invalid_parameter");
    assert_eq!(answer.json()["error"]["parameter"], "format");
    let message = answer.json()["error"]["message"].to_string();
    assert!(message.contains("heif feature"), "{message}");

    let id = gateway.upload_fixture(name).await;
    gateway.wait_final(&id).await;
    let answer = gateway
        .get(&format!("/images/{id}/thumbnails/64x64?format=avif"))
        .await;
    answer.assert_error(400, "invalid_parameter");
}

/// Without the `heif` feature, HEIC and AVIF are refused at the door, naming the feature.
#[tokio::test]
async fn heic_and_avif_need_their_feature() {
    if cfg!(feature = "heif") {
        return;
    }
    let gateway = Gateway::start_with_queue(None, "").await;
    for name in ["heic-rgb.heic", "avif-rgb.avif"] {
        let answer = gateway.upload(media_type_of(name), &fixture(name)).await;
        answer.assert_error(415, "unsupported_media_type");
        let message = answer.json()["error"]["message"].to_string();
        assert!(
            message.contains("without the `heif` feature"),
            "{name}: {message}"
        );
    }
}

on_every_backend!(
    every_format_becomes_a_faithful_thumbnail,
    exif_orientation_is_applied_on_the_pixels,
    alpha_is_kept,
    the_first_gif_frame_is_used,
    output_format_follows_the_configuration,
    avif_output_on_request,
);
