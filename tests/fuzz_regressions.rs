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

use harness::{
    FORM_BOUNDARY, form, icc_profile, jxl_header, pdf, source, svg, thumbnail, upload_body, video,
};

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
fn svg_regressions_and_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/svg");
    if dir.exists() {
        for (name, data) in regressions("svg") {
            println!("{name}");
            svg(&data);
        }
    }
    for name in [
        "svg-shapes.svg",
        "hostile-svg-laughs.svg",
        "hostile-svg-uses.svg",
        "hostile-svg-deep.svg",
    ] {
        svg(&support::fixture(name));
    }
}

#[test]
fn pdf_fixtures() {
    for name in [
        "pdf-page.pdf",
        "pdf-encrypted.pdf",
        "hostile-pdf-huge-page.pdf",
        "hostile-document.pdf",
    ] {
        let whole = support::fixture(name);
        pdf(&whole);
        pdf(&whole[..whole.len() / 2]);
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

/// Forms as the `form` target's seeds make them: files, fields, a late field, a cut body,
/// tiny parts past both limits.
#[test]
fn form_regressions_and_seeds() {
    let part = |name: &str, filename: Option<&str>, body: &[u8]| {
        let filename = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
        let mut part = format!(
            "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n"
        )
        .into_bytes();
        part.extend_from_slice(body);
        part.extend_from_slice(b"\r\n");
        part
    };
    let end = format!("--{FORM_BOUNDARY}--\r\n").into_bytes();
    let two = [
        part("sizes", None, b"32x32"),
        part("image", Some("a.png"), &support::fixture("small.png")),
        part("image", Some("b.jpg"), &support::fixture("strip.jpg")),
        part("fit", None, b"cover"),
        end.clone(),
    ]
    .concat();
    let mut tiny: Vec<u8> = (0..200)
        .flat_map(|i| part("f", Some(&i.to_string()), b"x"))
        .collect();
    tiny.extend_from_slice(&end);
    for input in [
        two.clone(),
        two[..300].to_vec(),
        tiny,
        b"--nothing".to_vec(),
        Vec::new(),
    ] {
        form(&input);
    }
    for (name, data) in regressions("form") {
        println!("{name}");
        form(&data);
    }
}

/// Sources as the `source` target's seeds answer: whole, chunked, redirecting, lying.
#[test]
fn source_regressions_and_seeds() {
    let png = support::fixture("small.png");
    let mut whole = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        png.len()
    )
    .into_bytes();
    whole.extend_from_slice(&png);
    let cut = whole[..whole.len() / 2].to_vec();
    for input in [
        whole,
        cut,
        b"HTTP/1.1 302 Found\r\nLocation: http://example.org/\r\nContent-Length: 0\r\n\r\n"
            .to_vec(),
        b"HTTP/1.1 304 Not Modified\r\nLocation: /x\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nGIF89a".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"not http at all".to_vec(),
        Vec::new(),
    ] {
        source(&input);
    }
    for (name, data) in regressions("source") {
        println!("{name}");
        source(&data);
    }
}

/// JPEG XL files, whole, cut and past the limits.
#[test]
fn jxl_header_regressions_and_fixtures() {
    for name in [
        "jxl-lossy.jxl",
        "jxl-alpha.jxl",
        "jxl-16bit.jxl",
        "jxl-orientation-6.jxl",
        "bomb-jxl.jxl",
    ] {
        let whole = support::fixture(name);
        for cut in [whole.len(), 3000.min(whole.len()), 40.min(whole.len())] {
            jxl_header(&whole[..cut]);
        }
    }
    for (name, data) in regressions("jxl_header") {
        println!("{name}");
        jxl_header(&data);
    }
}

/// The profiles of the colour fixtures, an sRGB profile bent into hostile shapes (a tag count
/// of billions, tags past the end, a curve of four billion entries, a lookup table of 255
/// points in 15 dimensions, a profile cut short), and the regressions: each read and used, or
/// refused, in bounded memory and time.
#[test]
fn icc_profile_regressions_hostile_profiles_and_real_ones() {
    let srgb = moxcms::ColorProfile::new_srgb().encode().unwrap();
    let be = |at: usize, bytes: &[u8]| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let tags = be(128, &srgb) as usize;
    let mut hostile: Vec<(String, Vec<u8>)> = Vec::new();
    let mut many_tags = srgb.clone();
    many_tags[128..132].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    hostile.push(("a billion tags".into(), many_tags));
    let mut past_the_end = srgb.clone();
    for tag in 0..tags {
        let entry = 132 + tag * 12;
        past_the_end[entry + 4..entry + 8].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        past_the_end[entry + 8..entry + 12].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
    }
    hostile.push(("tags past the end".into(), past_the_end));
    let mut huge_curve = srgb.clone();
    for tag in 0..tags {
        let entry = 132 + tag * 12;
        if &huge_curve[entry..entry + 4] == b"rTRC" {
            let at = be(entry + 4, &srgb) as usize;
            huge_curve[at..at + 4].copy_from_slice(b"curv");
            huge_curve[at + 8..at + 12].copy_from_slice(&0xffff_ffffu32.to_be_bytes());
        }
    }
    hostile.push(("a curve of four billion entries".into(), huge_curve));
    // A CMYK profile whose A2B0 is an mft2 of 15 inputs at 255 grid points.
    let mut lut = Vec::new();
    lut.extend_from_slice(b"mft2\0\0\0\0");
    lut.extend_from_slice(&[15, 3, 255, 0]);
    lut.extend_from_slice(&[
        0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0,
    ]);
    lut.extend_from_slice(&[0, 2, 0, 2]);
    lut.extend_from_slice(&[0u8; 64]);
    let mut table = srgb[..128].to_vec();
    table[16..20].copy_from_slice(b"CMYK");
    table[12..16].copy_from_slice(b"prtr");
    table.extend_from_slice(&1u32.to_be_bytes());
    table.extend_from_slice(b"A2B0");
    table.extend_from_slice(&144u32.to_be_bytes());
    table.extend_from_slice(&(lut.len() as u32).to_be_bytes());
    table.extend_from_slice(&lut);
    let size = table.len() as u32;
    table[..4].copy_from_slice(&size.to_be_bytes());
    hostile.push(("a 15-dimensional lookup table".into(), table));
    hostile.push((
        "a profile cut short".into(),
        srgb[..srgb.len() / 2].to_vec(),
    ));
    for (name, profile) in hostile {
        println!("{name}");
        for selector in [0u8, 1] {
            let mut input = vec![selector];
            input.extend_from_slice(&profile);
            icc_profile(&input);
        }
        let colour = worker::colour::Colour::of(&worker::colour::Description::Icc(profile), false);
        assert!(!colour.converts(), "{name}: refused");
        assert!(colour.warning().is_some(), "{name}: with a warning");
    }
    for name in ["colour-a98.jpg", "colour-cmyk.jpg", "colour-grey-lstar.jpg"] {
        let bytes = support::fixture(name);
        let mut decoder = jpeg_decoder::Decoder::new(&bytes[..]);
        decoder.read_info().unwrap();
        let profile = decoder.icc_profile().unwrap();
        let grey = u8::from(name.contains("grey"));
        icc_profile(&[&[grey][..], &profile].concat());
    }
    for (name, data) in regressions("icc_profile") {
        println!("{name}");
        icc_profile(&data);
    }
}
