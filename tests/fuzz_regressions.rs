//! Inputs the fuzzers (`fuzz/run.sh`) once crashed on, replayed as ordinary tests, with the
//! same checks as the harnesses in `fuzz/fuzz_targets/`. Every fixture is replayed too, so the
//! checks always run on real inputs.
//!
//! | found | what it was | fixed by |
//! |---|---|---|
//! | `upload_body/crash-2d87e4cb…` | a `data:` prefix with its comma past the 256-byte limit was accepted when the body came in one piece, refused when it came in small chunks | the limit applies alike however the body is chunked |
//! | `upload_body/crash-d2d6a12c…` | a `=` inside the data was taken for the end when it happened to end a streamed segment | a segment with more data after it may not end in padding |

mod support;

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

use harness::{thumbnail, upload_body, video};

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
        (6, "jxl-lossy.jxl"),
        (6, "jxl-orientation-6.jxl"),
        (7, "avif-alpha.avif"),
        (8, "heic-rgb.heic"),
    ] {
        let mut input = vec![selector];
        input.extend_from_slice(&support::fixture(name));
        thumbnail(&input);
    }
}

#[test]
fn video_fixtures() {
    for (selector, name) in [
        (0u8, "video-h264.mp4"),
        (0, "video-truncated.mp4"),
        (0, "video-bomb.mp4"),
        (0, "audio-only.mp4"),
        (0, "hostile-hls.mp4"),
        (1, "video-black-start.mov"),
        (2, "video-vp9.webm"),
        (3, "video-hevc.mkv"),
        (3, "video-hevc-10bit.mkv"),
        (4, "video-mpeg4.avi"),
        (4, "video-h264.mp4"),
    ] {
        let mut input = vec![selector];
        input.extend_from_slice(&support::fixture(name));
        video(&input);
    }
}
