//! Inputs the fuzzers (`fuzz/run.sh`) once crashed on, replayed as ordinary tests, with the
//! same checks as the harnesses in `fuzz/fuzz_targets/`. Every fixture is replayed too, so the
//! checks always run on real inputs.
//!
//! | found | what it was | fixed by |
//! |---|---|---|
//! | `upload_body/crash-2d87e4cb…` | a `data:` prefix with its comma past the 256-byte limit was accepted when the body came in one piece, refused when it came in small chunks | the limit applies alike however the body is chunked |

mod support;

use std::path::Path;

use common::config::{LimitsConfig, ThumbnailConfig};
use gateway::body::{Base64Stream, Envelope, decode_base64};

/// Every file of `tests/fuzz-regressions/<target>/`.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .filter(|(name, _)| !name.ends_with(".md"))
        .collect()
}

/// The `upload_body` harness: chunked and one-piece decoding agree; nothing panics.
fn upload_body(data: &[u8]) {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let limit = 1 << 20;
    let mut stream = Base64Stream::new(limit, None);
    let streamed = body
        .chunks(usize::from(chunk).max(1))
        .try_for_each(|piece| stream.push(piece))
        .and_then(|()| stream.finish());
    if let Ok(text) = std::str::from_utf8(body) {
        let whole = decode_base64(text, limit);
        assert_eq!(
            streamed.as_ref().ok(),
            whole.as_ref().ok(),
            "chunking changed the result"
        );
    }
    let _ = serde_json::from_slice::<Envelope>(body);
}

/// The `thumbnail` harness: the pipeline returns, whatever the bytes.
fn thumbnail(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let media_type = common::media::ALL[usize::from(selector) % common::media::ALL.len()];
    let limits = LimitsConfig {
        max_pixels: 4_000_000,
        max_alloc_bytes: 256 * 1024 * 1024,
        ..LimitsConfig::default()
    };
    let _ = worker::thumbnail::make(image, media_type, &ThumbnailConfig::default(), &limits);
}

#[test]
fn upload_body_regressions_and_fixtures() {
    for (name, data) in regressions("upload_body") {
        println!("{name}");
        upload_body(&data);
    }
    for name in ["small.png", "strip.jpg"] {
        let encoded = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            support::fixture(name),
        );
        for chunk in [1u8, 3, 76, 255] {
            let mut input = vec![chunk];
            input.extend_from_slice(encoded.as_bytes());
            upload_body(&input);
        }
    }
}

#[test]
fn thumbnail_regressions_and_fixtures() {
    for (name, data) in regressions("thumbnail") {
        println!("{name}");
        thumbnail(&data);
    }
    for (selector, name) in [
        (0u8, "jpeg-baseline.jpg"),
        (1, "png-rgba.png"),
        (2, "gif-animated.gif"),
    ] {
        let mut input = vec![selector];
        input.extend_from_slice(&support::fixture(name));
        thumbnail(&input);
    }
}
