//! Variants: sizes, fits, formats and presets asked for at upload, served by name, and made
//! on demand; checked against Pillow's references on the real fixtures, on every back-end.

mod support;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, Gateway, fixture, fixtures_dir, mean_difference, media_type_of};

/// Mean absolute difference (0–255 per channel) allowed from Pillow's reference, as in the
/// format tests: a wrong crop, orientation or stretch is far over it.
const TOLERANCE: f64 = 8.0;

/// The fixtures with references in `expected/variants/`, and whether they have alpha.
const FILES: &[(&str, bool)] = &[
    ("jpeg-baseline.jpg", false),
    ("jpeg-exif-orientation-6.jpg", false),
    ("png-rgba.png", true),
    ("webp-alpha.webp", true),
    ("gif-animated.gif", false),
    ("tiff-lzw.tiff", false),
    ("bmp-24.bmp", false),
];

/// One upload per fit: its sizes and the format asked for.
const REQUESTS: &[(&str, &str, &str)] = &[
    ("contain", "64x48,120x", "auto"),
    ("cover", "64x48,x30", "webp"),
    ("fill", "64x48", "png"),
];

/// Pillow's reference for one variant of `file`.
fn reference(file: &str, size: &str, fit: &str) -> image::RgbaImage {
    let stem = file.rsplit_once('.').unwrap().0;
    let path = fixtures_dir()
        .join("expected/variants")
        .join(format!("{stem}-{size}-{fit}.png"));
    image::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgba8()
}

/// `POST /images?query` with the fixture in base64.
async fn upload_with(gateway: &Gateway, file: &str, query: &str) -> support::Answer {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(fixture(file));
    gateway
        .request(
            Method::POST,
            &format!("/images?{query}"),
            &[("content-type", media_type_of(file))],
            body,
        )
        .await
}

/// A variant's raw bytes.
async fn variant(gateway: &Gateway, media_id: &str, name: &str) -> support::Answer {
    gateway
        .request(
            Method::GET,
            &format!("/images/{media_id}/thumbnails/{name}"),
            &[("accept", "image/*")],
            Bytes::new(),
        )
        .await
}

async fn every_size_fit_and_format_matches_pillow(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let mut uploads = Vec::new();
    for &(file, alpha) in FILES {
        for &(fit, sizes, format) in REQUESTS {
            let answer = upload_with(
                &gateway,
                file,
                &format!("sizes={sizes}&fit={fit}&format={format}"),
            )
            .await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{file} {fit}");
            let record = answer.json();
            let names: Vec<&str> = record["thumbnails"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names.join(","), sizes, "{file}: listed at once");
            uploads.push((file, alpha, fit, sizes, format, answer.media_id()));
        }
    }
    for (file, alpha, fit, sizes, format, media_id) in uploads {
        let record = gateway.wait_final(&media_id).await;
        assert_eq!(record["state"], "Completed", "{file} {fit}: {record}");
        for (index, size) in sizes.split(',').enumerate() {
            let entry = &record["thumbnails"][index];
            assert_eq!(entry["state"], "ready", "{file} {size} {fit}: {entry}");
            assert_eq!(entry["fit"], fit);
            let url = format!("/images/{media_id}/thumbnails/{size}");
            assert_eq!(entry["url"], url);
            let answer = variant(&gateway, &media_id, size).await;
            assert_eq!(answer.status, StatusCode::OK, "{file} {size}");
            let media_type = answer.header("content-type").unwrap();
            let expected_type = match (format, alpha) {
                ("webp", _) => "image/webp",
                ("png", _) | ("auto", true) => "image/png",
                _ => "image/jpeg",
            };
            assert_eq!(media_type, expected_type, "{file} {size} {fit}");
            assert_eq!(entry["media_type"], expected_type);
            let image = image::load_from_memory(&answer.body).unwrap();
            assert_eq!(
                image.color().has_alpha(),
                alpha && expected_type != "image/jpeg",
                "{file} {size} {fit}: alpha kept where the format has it"
            );
            let (w, h) = (image.width(), image.height());
            assert_eq!(
                (entry["width"].as_u64(), entry["height"].as_u64()),
                (Some(w.into()), Some(h.into()))
            );
            let expected = reference(file, size, fit);
            let (ew, eh) = expected.dimensions();
            let open_side = size.starts_with('x') || size.ends_with('x');
            if fit == "contain" || open_side {
                assert!(
                    w.abs_diff(ew) <= 1 && h.abs_diff(eh) <= 1,
                    "{file} {size} {fit}: {w}×{h}, Pillow {ew}×{eh}"
                );
            } else {
                assert_eq!((w, h), (ew, eh), "{file} {size} {fit}: exactly the box");
            }
            let ours = image.to_rgba8();
            let expected = if (ew, eh) == (w, h) {
                expected
            } else {
                image::imageops::resize(&expected, w, h, image::imageops::FilterType::Triangle)
            };
            let difference = mean_difference(&ours, &expected);
            assert!(
                difference < TOLERANCE,
                "{file} {size} {fit}: differs from Pillow by {difference:.2} per channel"
            );
        }
        // The first variant is also the record's `thumbnail` and `/thumbnail`.
        let first = &record["thumbnails"][0];
        assert_eq!(record["thumbnail"]["width"], first["width"]);
        let answer = gateway.thumbnail(&media_id).await;
        assert_eq!(
            answer.body,
            variant(&gateway, &media_id, sizes.split(',').next().unwrap())
                .await
                .body
        );
    }
}

async fn variants_are_served_by_name_with_their_own_etags(backend: Backend) {
    let yaml = "thumbnail: {presets: {card: {size: 200x150, fit: cover, format: webp}}}";
    let gateway = Gateway::start(backend, yaml).await;
    let answer = upload_with(
        &gateway,
        "jpeg-baseline.jpg",
        "sizes=100x100,card&quality=60",
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let media_id = answer.media_id();
    let record = gateway.wait_final(&media_id).await;
    let card = &record["thumbnails"][1];
    assert_eq!(
        (
            &card["name"],
            &card["fit"],
            &card["media_type"],
            &card["width"],
            &card["height"]
        ),
        (
            &json!("card"),
            &json!("cover"),
            &json!("image/webp"),
            &json!(200),
            &json!(150)
        ),
        "{card}"
    );
    assert_eq!(
        card["request"]["quality"], 60,
        "the request's quality for the preset"
    );
    let raw = variant(&gateway, &media_id, "card").await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.body.len() as u64, card["size"].as_u64().unwrap());
    let etag = raw.header("etag").unwrap();
    assert_ne!(
        etag,
        gateway.thumbnail(&media_id).await.header("etag").unwrap()
    );
    let base64 = gateway
        .get(&format!("/images/{media_id}/thumbnails/card"))
        .await;
    assert_eq!(base64.status, StatusCode::OK);
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&base64.body)
        .unwrap();
    assert_eq!(decoded, raw.body.to_vec());
    assert_ne!(base64.header("etag").unwrap(), etag);
    let again = gateway
        .request(
            Method::GET,
            &format!("/images/{media_id}/thumbnails/card"),
            &[("accept", "image/webp"), ("if-none-match", etag.as_str())],
            Bytes::new(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    // An unknown name that is no size: 404 listing what exists.
    let unknown = variant(&gateway, &media_id, "poster").await;
    unknown.assert_error(404, "unknown_variant");
    assert_eq!(
        unknown.json()["error"]["variants"],
        json!(["100x100", "card"])
    );
    // keep_raw is off: a new size cannot be made, and the message says why.
    let off = variant(&gateway, &media_id, "300x300").await;
    off.assert_error(404, "unknown_variant");
    assert!(
        off.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keep_raw")
    );
    // Deleting the record deletes every variant.
    let deleted = gateway
        .request(
            Method::DELETE,
            &format!("/images/{media_id}"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gateway
        .object_names("thumbnails")
        .iter()
        .any(|name| name.starts_with(&media_id))
    {
        assert!(std::time::Instant::now() < deadline, "variants left behind");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn variants_are_made_on_demand_once(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true\nlimits: {max_variants: 3}").await;
    let media_id = gateway.upload_fixture("jpeg-baseline.jpg").await;
    gateway.wait_final(&media_id).await;
    let path = format!("/images/{media_id}/thumbnails/160x160?fit=cover");
    let first = gateway.get(&path).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.json());
    let location = first.header("location").unwrap();
    assert_eq!(location, format!("/images/{media_id}/thumbnails/160x160"));
    assert!(first.header("retry-after").is_some());
    // Asked again at once: the same variant, not a second one.
    let second = gateway.get(&path).await;
    assert!(
        [StatusCode::ACCEPTED, StatusCode::OK].contains(&second.status),
        "{}",
        second.status
    );
    let record = gateway
        .wait_record(&media_id, |r| r["thumbnails"][1]["state"] == "ready")
        .await;
    assert_eq!(
        record["thumbnails"].as_array().unwrap().len(),
        2,
        "{record}"
    );
    assert_eq!(record["state"], "Completed");
    let made = variant(&gateway, &media_id, "160x160").await;
    assert_eq!(made.status, StatusCode::OK);
    let image = image::load_from_memory(&made.body).unwrap();
    assert_eq!(
        (image.width(), image.height()),
        (160, 160),
        "cover fills the box"
    );
    let events = gateway
        .get(&format!("/images/{media_id}/events"))
        .await
        .json();
    let requested = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "variant_requested")
        .count();
    assert_eq!(requested, 1, "queued once: {events}");
    // The same size with another fit is another variant, under a name of its own.
    let contain = gateway
        .get(&format!(
            "/images/{media_id}/thumbnails/160x160?fit=contain"
        ))
        .await;
    assert_eq!(contain.status, StatusCode::ACCEPTED);
    let name = contain.json()["name"].as_str().unwrap().to_owned();
    assert_ne!(name, "160x160");
    gateway
        .wait_record(&media_id, |r| r["thumbnails"][2]["state"] == "ready")
        .await;
    let image = image::load_from_memory(&variant(&gateway, &media_id, &name).await.body).unwrap();
    assert_eq!((image.width(), image.height()), (160, 100));
    // The limit of variants per record.
    let over = gateway
        .get(&format!("/images/{media_id}/thumbnails/50x50"))
        .await;
    over.assert_error(400, "too_many_variants");
    // A bad size is a bad parameter, not a new variant nor an unknown name, however far out
    // of range its numbers are.
    for size in [
        "9000x10",
        "0x0",
        "0x",
        "99999999999999999999x1",
        "4097x4097",
    ] {
        let bad = gateway
            .get(&format!("/images/{media_id}/thumbnails/{size}"))
            .await;
        bad.assert_error(400, "invalid_parameter");
    }
    // An unknown name is 404, and its message does not repeat it.
    let unknown = gateway
        .get(&format!("/images/{media_id}/thumbnails/zz-marker"))
        .await;
    unknown.assert_error(404, "unknown_variant");
    assert!(!String::from_utf8_lossy(&unknown.body).contains("zz-marker"));
}

async fn small_images_are_enlarged_only_when_asked(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let plain = upload_with(&gateway, "jpeg-baseline.jpg", "sizes=1600x1600").await;
    let enlarged = upload_with(
        &gateway,
        "jpeg-baseline.jpg",
        "sizes=1600x1600&enlarge=true",
    )
    .await;
    let plain = gateway.wait_final(&plain.media_id()).await;
    let enlarged = gateway.wait_final(&enlarged.media_id()).await;
    assert_eq!(
        (
            &plain["thumbnails"][0]["width"],
            &plain["thumbnails"][0]["height"]
        ),
        (&json!(800), &json!(500))
    );
    assert_eq!(
        (
            &enlarged["thumbnails"][0]["width"],
            &enlarged["thumbnails"][0]["height"]
        ),
        (&json!(1600), &json!(1000))
    );
}

/// A JPEG whose ICC profile lies about what it is: an APP2 `ICC_PROFILE` segment of junk.
fn with_broken_profile(jpeg: &[u8]) -> Vec<u8> {
    let mut body = b"ICC_PROFILE\0\x01\x01".to_vec();
    body.extend_from_slice(&[0xab; 300]);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe2]);
    out.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Colour, gravity and placeholders through the service: an Adobe RGB photograph's record
/// carries its placeholders and the variants' settings; `color=keep` embeds the source's
/// profile, the default tags nothing in a JPEG (sRGB by definition) and changes the
/// colours; a profile that cannot be read is sRGB with a warning in the history, and the
/// job completes.
async fn colours_crops_and_placeholders_go_through_the_service(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let converted = upload_with(
        &gateway,
        "colour-a98.jpg",
        "sizes=120x120&fit=cover&gravity=attention&format=jpeg",
    )
    .await
    .media_id();
    let kept = upload_with(
        &gateway,
        "colour-a98.jpg",
        "sizes=120x120&fit=cover&focus=0.3,0.6&format=jpeg&color=keep",
    )
    .await
    .media_id();
    let record = gateway.wait_final(&converted).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let request = &record["thumbnails"][0]["request"];
    assert_eq!(
        (&request["gravity"], &request["color"]),
        (&json!("attention"), &json!("srgb"))
    );
    let placeholder = &record["placeholder"];
    let thumbhash = placeholder["thumbhash"].as_str().expect("a thumbhash");
    use base64::Engine;
    let hash = base64::engine::general_purpose::STANDARD
        .decode(thumbhash)
        .unwrap();
    assert!((5..=40).contains(&hash.len()), "{} bytes", hash.len());
    let colour = placeholder["dominant_color"]
        .as_str()
        .expect("a dominant colour");
    assert!(
        colour.len() == 7
            && colour.starts_with('#')
            && colour[1..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{colour}"
    );
    assert!(placeholder.get("blurhash").is_none(), "not asked for");
    let record = gateway.wait_final(&kept).await;
    let request = &record["thumbnails"][0]["request"];
    assert_eq!(
        (&request["gravity"], &request["focus"], &request["color"]),
        (&json!("focus"), &json!("0.3,0.6"), &json!("keep"))
    );
    let icc = |bytes: &[u8]| {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder.read_info().unwrap();
        decoder.icc_profile()
    };
    let source = icc(&fixture("colour-a98.jpg")).expect("the fixture's profile");
    let kept_jpeg = variant(&gateway, &kept, "120x120").await;
    assert_eq!(icc(&kept_jpeg.body), Some(source));
    let converted_jpeg = variant(&gateway, &converted, "120x120").await;
    assert_eq!(icc(&converted_jpeg.body), None);

    let broken = with_broken_profile(&fixture("jpeg-baseline.jpg"));
    let body = base64::engine::general_purpose::STANDARD.encode(&broken);
    let answer = gateway
        .request(
            Method::POST,
            "/images",
            &[("content-type", "image/jpeg")],
            body,
        )
        .await;
    let media_id = answer.media_id();
    let record = gateway.wait_final(&media_id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let events = gateway
        .get(&format!("/images/{media_id}/events"))
        .await
        .json();
    let warnings: Vec<&Value> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["event"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{events}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(
        message.contains("ICC profile") && message.contains("sRGB"),
        "{message}"
    );
}

on_every_backend!(
    every_size_fit_and_format_matches_pillow,
    variants_are_served_by_name_with_their_own_etags,
    variants_are_made_on_demand_once,
    small_images_are_enlarged_only_when_asked,
    webp_is_lossy_at_its_quality_unless_lossless,
    colours_crops_and_placeholders_go_through_the_service,
);

/// WebP is lossy at its quality: a fraction of the lossless size, close to the exact
/// pixels; `lossless=true` keeps every pixel; and a variant made on demand with other
/// settings is named by them.
async fn webp_is_lossy_at_its_quality_unless_lossless(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true").await;
    let query = "sizes=400x300&fit=cover&format=webp";
    let lossy = upload_with(
        &gateway,
        "jpeg-baseline.jpg",
        &format!("{query}&quality=80"),
    )
    .await;
    let lossless = upload_with(
        &gateway,
        "jpeg-baseline.jpg",
        &format!("{query}&lossless=true"),
    )
    .await;
    let (lossy, lossless) = (lossy.media_id(), lossless.media_id());
    let lossy_record = gateway.wait_final(&lossy).await;
    let lossless_record = gateway.wait_final(&lossless).await;
    assert_eq!(lossy_record["thumbnails"][0]["request"]["lossless"], false);
    assert_eq!(
        lossless_record["thumbnails"][0]["request"]["lossless"],
        true
    );
    let small = variant(&gateway, &lossy, "400x300").await;
    let exact = variant(&gateway, &lossless, "400x300").await;
    assert_eq!(small.header("content-type").as_deref(), Some("image/webp"));
    assert!(
        small.body.len() * 3 < exact.body.len(),
        "lossy {} bytes, lossless {}",
        small.body.len(),
        exact.body.len()
    );
    let small = image::load_from_memory(&small.body).unwrap().to_rgba8();
    let exact = image::load_from_memory(&exact.body).unwrap().to_rgba8();
    assert_eq!(small.dimensions(), (400, 300));
    let difference = mean_difference(&small, &exact);
    assert!(
        difference < 4.0,
        "lossy WebP is {difference} from the exact pixels"
    );
    // Lossless on demand, beside the lossy one: named by its settings.
    let made = gateway
        .get(&format!(
            "/images/{lossy}/thumbnails/400x300?fit=cover&format=webp&lossless=true"
        ))
        .await;
    assert_eq!(
        made.status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&made.body)
    );
    assert_eq!(made.json()["name"], "400x300-cover-webp-lossless");
}

#[tokio::test]
async fn bad_variant_parameters_are_refused_naming_the_parameter() {
    let gateway = Gateway::start(
        Backend::Embedded,
        "thumbnail: {presets: {card: {size: 400x300}}}\nlimits: {max_thumbnail_side: 2000, max_variants: 3}",
    )
    .await;
    for (query, parameter) in [
        ("sizes=abc", "sizes"),
        ("sizes=100x100,nope", "sizes"),
        ("sizes=0x10", "sizes"),
        ("sizes=x", "sizes"),
        ("sizes=2001x10", "sizes"),
        ("sizes=1x1,2x2,3x3,4x4", "sizes"),
        ("sizes=1x1,1x1", "sizes"),
        ("fit=crop", "fit"),
        ("format=bmp", "format"),
        ("animated=sometimes", "animated"),
        ("animated=true&format=avif", "animated"),
        ("quality=0", "quality"),
        ("quality=101", "quality"),
        ("quality=high", "quality"),
        ("enlarge=maybe", "enlarge"),
        ("lossless=maybe", "lossless"),
        ("fit=cover&gravity=middle", "gravity"),
        ("fit=cover&gravity=focus", "gravity"),
        ("fit=cover&focus=0.5", "focus"),
        ("fit=cover&focus=1.5,0.5", "focus"),
        ("fit=cover&gravity=north&focus=0.5,0.5", "focus"),
        ("color=p3", "color"),
    ] {
        let answer = upload_with(&gateway, "small.png", query).await;
        answer.assert_error(400, "invalid_parameter");
        assert_eq!(answer.json()["error"]["parameter"], parameter, "{query}");
    }
    // The message names the parameter, never the value sent.
    for query in [
        "sizes=zzmarker",
        "sizes=10x10,zzmarker",
        "fit=zzmarker",
        "format=zzmarker",
        "gravity=zzmarker",
        "focus=zzmarker",
        "color=zzmarker",
    ] {
        let answer = upload_with(&gateway, "small.png", query).await;
        answer.assert_error(400, "invalid_parameter");
        assert!(
            !String::from_utf8_lossy(&answer.body).contains("zzmarker"),
            "{query}"
        );
    }
    // The same in a JSON envelope.
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(fixture("small.png"));
    for (fields, parameter) in [
        (json!({"sizes": ["100x100", "huge"]}), "sizes"),
        (json!({"fit": "crop"}), "fit"),
        (json!({"quality": 500}), "quality"),
        (
            json!({"callback_url": "http://10.0.0.1/hook"}),
            "callback_url",
        ),
    ] {
        let mut body = json!({"data": data, "media_type": "image/png"});
        body.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let answer = gateway.post_json(&body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json()["error"]["parameter"], parameter);
    }
    // A good envelope with fields: they apply.
    let body = json!({"data": data, "media_type": "image/png", "sizes": "card,8x8", "fit": "fill"});
    let answer = gateway.post_json(&body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    let record: Value = answer.json();
    assert_eq!(record["thumbnails"][0]["name"], "card");
    assert_eq!(record["thumbnails"][1]["fit"], "fill");
    // Nothing was stored for the refused ones.
    assert_eq!(gateway.record_count().await, 1);
}
