//! Hostile input, end to end against a real gateway. Every bad request gets a clear JSON error
//! with the right status, never a crash, never a lost or stuck record. The tests of what
//! reaches the store, the media storage and the workers run on every back-end (embedded;
//! RabbitMQ; RabbitMQ with PostgreSQL and S3), the others on the embedded one.
//!
//! | input | answer | test |
//! |---|---|---|
//! | header declaring more pixels than `limits.max_pixels`: PNG 50000², JPEG 65535², GIF 65535², WebP 16383², TIFF 100000², BMP 60000², JPEG XL 10240² (a real one, 5 KB), HEIC and AVIF 20000² (`ispe`, with the `heif` feature) | 413 `too_many_pixels` at upload; no pixel buffer is allocated (gateway peak RSS measured) | `bombs_of_every_format_are_refused_from_the_header` |
//! | the same bombs reaching a worker | `Error` record, code 413, from the header | `worker` unit test `bombs_of_every_format_are_refused_from_the_header` |
//! | metadata bombs: PNG `iCCP`/`zTXt`/`iTXt` inflating to 256 MiB | 202, `Completed`: never inflated (peak RSS of the gateway and its workers measured) | `metadata_bombs_cost_no_memory` |
//! | JPEG with ICC segments over `limits.max_metadata_bytes` | 202, `Completed` without them, EXIF orientation kept | same |
//! | PNG `eXIf`, GIF extensions, WebP `EXIF`, TIFF strip table over the bound | 413 `metadata_too_large` at upload | same; `worker` unit test `metadata_bombs_are_bounded_in_every_format` |
//! | a decode that exhausts a worker's memory every time | worker dies; dead-lettered after the delivery limit; `Error` record | `rabbitmq.rs` |
//! | every fixture cut short (half, 10 bytes) | 202 then `Completed` (decoders that fill what is missing) or `Error` 422; or 415 when too little is left to recognise | `truncated_and_corrupt_files_of_every_format_end_final` |
//! | every fixture with bytes overwritten in its body | 202 then `Completed` or `Error`; never a crash | same |
//! | 0 bytes | 400 `empty_body` | `tiny_and_disguised_files_are_refused` |
//! | 1 byte, or bytes of no known format | 415 `media_type_mismatch` ("unrecognised data") | same |
//! | PDF, ZIP, MP4, HTML declared as an image; a PDF/PNG polyglot; PNG declared as JPEG | 415 `media_type_mismatch` naming what was found | same, and `api.rs` |
//! | base64 with bad characters or misplaced padding | 400 `invalid_base64` | `api.rs` |
//! | `data:image/png;base64,` prefix | accepted | `api.rs` |
//! | JSON malformed, 10 000 levels deep, or missing fields | 400 `invalid_json` | `api.rs` |
//! | body over `limits.max_upload_bytes` | 413 before any of it is read (`Content-Length`), or as soon as the decoded size passes the limit (chunked) | `api.rs` |
//! | `Content-Length` larger than the body, then the client stops sending | 400 `body_read_failed` | `a_body_shorter_than_its_content_length_is_refused` |
//! | a client that stops sending its body (`limits.read_timeout_secs`) | 408 `request_timeout`, connection freed | `slow_clients_lose_their_connection` |
//! | a client trickling its headers | connection closed after `limits.read_timeout_secs` | same |
//! | an id that is not a UUID | 400 `invalid_id` | `api.rs` |
//! | `../../etc/passwd` as the name | kept as metadata; files are named by id only | `api.rs` |
//! | raw file corrupted on disk after acceptance | `Error` 422; the worker goes on | `a_raw_file_corrupted_after_acceptance_ends_as_an_error` |
//! | a job in flight at every crash of the (embedded) process | counted per restart; `Error` 500 after `recovery.max_attempts` | `durability.rs` |
//! | a job no worker ever finishes | queued again after `recovery.stuck_after_secs`, then `Error` 504 after `recovery.max_attempts` | `rabbitmq.rs` |
//! | a full disk | 507 `insufficient_storage`; accepted records stay readable; nothing half-written | `trust.rs` |
//! | a path id that is not UTF-8 (`%FF`), 4 KB long, or a UUID spelled another way | 400 `invalid_id`, the id never echoed (the canonical spelling named) | `every_refusal_is_the_json_error` |
//! | a target over 8 KiB; headers over 16 KiB or 100 | 414 `uri_too_long`; 431 `headers_too_large` | same |
//! | no `Host`, or two, in HTTP/1.1; two `Content-Type` | 400 `invalid_host`; 400 `invalid_header` | same |
//! | a malformed query; a name with U+202E, U+2028 or other hidden characters | 400 `invalid_parameter`, the input never echoed | same |
//! | a request head over 64 KiB (hyper's buffer), 120 KB and 1 MB; a request line or header that does not parse | 431 `headers_too_large`; 400 `malformed_request`: hyper's own refusals written as the JSON error, then the connection closes; nothing of the request is echoed | same |
//! | a 52 427 800-byte image (under the 50 MiB limit) as base64 with CRLF every 64 characters | 202 | `an_upload_at_the_limit_wrapped_in_crlf_is_accepted` |
//! | 6 concurrent JSON envelopes of 19 MB under a 42 MiB upload memory budget | 202 (or 503 `overloaded` while the budget is taken); peak RSS bounded by the budget | `upload_memory_stays_within_its_budget` |
//! | video: audio only; truncated; an MP4 whose headers declare 16000² pixels; an H.264 MP4 whose SPS declares 100000² (its container 64²) | `Error` 422 "no video stream"; 422; 413 from the probe, before a frame is decoded; 422, FFmpeg refusing the picture size before allocating it | `hostile_videos_end_as_clear_errors` |
//! | an HLS playlist (segment URL on loopback) declared as `video/mp4`; a PNG declared as a video | 415 `media_type_mismatch`; and forced to a worker, FFmpeg opens no connection (forced demuxer, `file` protocol only) | same; `worker` unit test `a_playlist_is_never_opened_as_one` |
//! | silent, h2c, idle, too many and trickling connections | closed, 503 or 408 in bounded time | `connections.rs` |
//! | a `Host` not in `server.allowed_hosts` (DNS rebinding); a cross-site POST to the dashboard's actions (`Origin`, `Sec-Fetch-Site`) | 400 `invalid_host`; 403 `forbidden` | `foreign_hosts_and_cross_site_posts_are_refused` |
//! | a JPEG XL cut short; one whose rendering is over `limits.max_alloc_bytes` (under the pixel limit) | `Error` 422; 413 at upload, from the header, naming the limit | `a_cut_or_oversized_jpeg_xl_is_refused` |
//! | SVG: a billion laughs (ten levels of entities); nine groups each using the one before ten times (10⁹ elements); 5,000 nested groups | `Error` 413 naming the bound (entities, `documents.max_elements`, `documents.max_depth`), before anything is drawn | `documents.rs` `svg_bombs_are_refused_by_their_bounds` |
//! | SVG naming files and URLs (`image`, `use`, `feImage`, CSS `@import` and `url()`, `foreignObject`, an SVG in a `data:` URL naming a file, an external entity) | drawn without them; no connection made, no file read | `documents.rs` `nothing_outside_the_document_is_read` |
//! | SVG drawn past `documents.timeout_secs` or `documents.max_memory_bytes` | its process killed; `Error` 504 (after retries) or 413 | `documents.rs` `a_rendering_out_of_time_or_memory_is_stopped` |
//! | an animated GIF of 10,000 frames on a 1000² canvas, `animated=true`; an animation of more pixels in all its frames than `limits.max_animation_pixels` | `Error` 413 naming `limits.max_frames` (the walk stops at the 1,001st frame header) or `limits.max_animation_pixels`, before a frame is decoded; without `animated`, its first frame | `animation.rs` `animations_over_the_limits_are_refused_from_their_headers`; `worker` unit test `the_limits_are_read_from_the_headers` |

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use support::{Backend, Gateway, fixture, media_type_of, raw_exchange, slow_png};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn bombs_of_every_format_are_refused_from_the_header(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let before = gateway.peak_rss_kib();
    let mut bombs = vec![
        "bomb-png.png",
        "bomb-jpeg.jpg",
        "bomb-gif.gif",
        "bomb-webp.webp",
        "bomb-tiff.tiff",
        "bomb-bmp.bmp",
        "bomb-jxl.jxl",
    ];
    if cfg!(feature = "heif") {
        bombs.extend(["bomb-heic.heic", "bomb-avif.avif"]);
    }
    for name in bombs {
        let answer = gateway.upload(media_type_of(name), &fixture(name)).await;
        answer.assert_error(413, "too_many_pixels");
        let message = answer.json()["error"]["message"].to_string();
        assert!(message.contains("over the limit"), "{name}: {message}");
    }
    let after = gateway.peak_rss_kib();
    // The smallest bomb would need 268 million pixels (800 MB); the gateway stays small.
    assert!(
        after < 150 * 1024,
        "peak RSS {after} KiB (before the bombs: {before} KiB)"
    );
    assert_eq!(gateway.record_count().await, 0);
}

#[tokio::test]
async fn metadata_bombs_cost_no_memory() {
    // The embedded gateway runs the workers too: its peak RSS covers probe and decode.
    let gateway = Gateway::start_with_queue(None, "limits: {max_metadata_bytes: 262144}").await;
    for name in [
        "png-rgb.png",
        "jpeg-baseline.jpg",
        "gif-animated.gif",
        "webp-lossy.webp",
    ] {
        let id = gateway.upload_fixture(name).await;
        assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    }
    let before = gateway.peak_rss_kib();
    // Each PNG bomb would inflate 256 MiB; the uploads themselves are under 400 KB. VmHWM
    // only grows, so checking it after each case names the first one that costs memory.
    let check_peak = |name: &str| {
        let peak = gateway.peak_rss_kib();
        assert!(
            peak < before + 8 * 1024,
            "{name}: peak RSS grew from {before} KiB to {peak} KiB"
        );
        eprintln!("{name}: peak RSS {peak} KiB ({before} KiB before the bombs)");
    };
    for (name, width, height) in [
        ("bomb-png-iccp.png", 10, 10),
        ("bomb-png-ztxt.png", 10, 10),
        ("bomb-png-itxt.png", 10, 10),
        ("bomb-meta-jpeg-icc.jpg", 75, 100),
    ] {
        let id = gateway.upload_fixture(name).await;
        let record = gateway.wait_final(&id).await;
        assert_eq!(record["state"], "Completed", "{name}: {record}");
        let thumbnail = &record["thumbnail"];
        assert_eq!(
            (thumbnail["width"].as_u64(), thumbnail["height"].as_u64()),
            (Some(width), Some(height)),
            "{name}: {record}"
        );
        check_peak(name);
    }
    for name in [
        "bomb-meta-png-exif.png",
        "bomb-meta-gif-comment.gif",
        "bomb-meta-webp-exif.webp",
        "bomb-meta-tiff-count.tiff",
    ] {
        let answer = gateway.upload(media_type_of(name), &fixture(name)).await;
        answer.assert_error(413, "metadata_too_large");
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            message.contains("over the limit of 262144 bytes"),
            "{name}: {message}"
        );
        check_peak(name);
    }
    assert_eq!(gateway.record_count().await, 8);
}

async fn truncated_and_corrupt_files_of_every_format_end_final(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let mut names = vec![
        "jpeg-baseline.jpg",
        "jpeg-progressive.jpg",
        "jpeg-cmyk.jpg",
        "png-rgb.png",
        "png-rgba.png",
        "png-interlaced.png",
        "png-16bit-rgb.png",
        "gif-animated.gif",
        "webp-lossy.webp",
        "webp-alpha.webp",
        "tiff-lzw.tiff",
        "bmp-24.bmp",
        "jxl-lossy.jxl",
        "jxl-16bit.jxl",
        "video-h264.mp4",
        "video-vp9.webm",
        "video-black-start.mov",
    ];
    if cfg!(feature = "heif") {
        names.extend(["heic-rgb.heic", "avif-alpha.avif"]);
    }
    let mut accepted = Vec::new();
    for &name in &names {
        let whole = fixture(name);
        let mut corrupt = whole.clone();
        let middle = corrupt.len() / 2;
        for byte in &mut corrupt[middle..middle + 64.min(whole.len() - middle)] {
            *byte ^= 0x5a;
        }
        for (variant, bytes) in [
            ("half", whole[..whole.len() / 2].to_vec()),
            ("10 bytes", whole[..10].to_vec()),
            ("corrupt", corrupt),
        ] {
            let answer = gateway.upload(media_type_of(name), &bytes).await;
            match answer.status.as_u16() {
                202 => accepted.push((format!("{name} ({variant})"), answer.media_id())),
                415 => answer.assert_error(415, "media_type_mismatch"),
                other => panic!("{name} ({variant}): {other} {:?}", answer.body),
            }
        }
    }
    assert!(
        accepted.len() >= names.len() * 2,
        "most variants are accepted"
    );
    for (what, id) in &accepted {
        let record = gateway.wait_final(id).await;
        match record["state"].as_str() {
            Some("Completed") => {}
            Some("Error") => {
                assert_eq!(record["code"], 422, "{what}: {record}");
                assert!(!record["message"].as_str().unwrap().is_empty());
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    // The service is intact.
    let id = gateway.upload_fixture("png-rgb.png").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
}

async fn tiny_and_disguised_files_are_refused(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    gateway
        .upload("image/png", b"")
        .await
        .assert_error(400, "empty_body");
    for bytes in [&b"\xff"[..], b"just some text", b"\0\0\0\0\0\0\0\0\0\0\0\0"] {
        let answer = gateway.upload("image/jpeg", bytes).await;
        answer.assert_error(415, "media_type_mismatch");
        assert!(answer.body.windows(17).any(|w| w == b"unrecognised data"));
    }
    let disguised: [(&[u8], &str); 4] = [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
        (
            b"PK\x03\x04\x14\0\0\0\x08\0\0\0\0\0\0\0\0\0",
            "application/zip",
        ),
        (b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom", "video/mp4"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "text/html"),
    ];
    // A polyglot: a PDF that carries a whole PNG after its header.
    let mut polyglot = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    polyglot.extend_from_slice(&fixture("small.png"));
    let polyglot: (&[u8], &str) = (&polyglot, "application/pdf");
    for (bytes, found) in disguised.into_iter().chain([polyglot]) {
        let answer = gateway.upload("image/png", bytes).await;
        answer.assert_error(415, "media_type_mismatch");
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            message,
            format!("declared image/png but the data is {found}")
        );
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_refused() {
    let gateway = Gateway::start_with_queue(None, "").await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\niVBORw0KGgo")
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_read_failed"), "{answer}");
    assert_eq!(gateway.record_count().await, 0);
}

async fn a_raw_file_corrupted_after_acceptance_ends_as_an_error(backend: Backend) {
    // One job at a time per worker, each kept busy, so that the file can be damaged before
    // it is read: each upload its own job (identical slow uploads would share one), its raw
    // file its own.
    let gateway = Gateway::start(backend, "worker: {concurrency: 1}\ndedup: false").await;
    let slow = slow_png();
    for _ in 0..2 {
        assert_eq!(gateway.upload("image/png", &slow).await.status, 202);
    }
    let id = gateway.upload_fixture("png-rgb.png").await;
    std::fs::write(
        gateway.raw_path(&id),
        b"\x89PNG\r\n\x1a\n this is no longer an image",
    )
    .unwrap();
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 422);
    let after = gateway.upload_fixture("jpeg-baseline.jpg").await;
    assert_eq!(gateway.wait_final(&after).await["state"], "Completed");
    let delete = gateway
        .request(Method::DELETE, &format!("/images/{id}"), &[], "")
        .await;
    assert_eq!(delete.status, 204);
}

#[tokio::test]
async fn slow_clients_lose_their_connection() {
    let gateway = Gateway::start_with_queue(None, "limits: {read_timeout_secs: 1}").await;
    let address = gateway.base.trim_start_matches("http://").to_owned();

    // A body that stops arriving.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\niVBORw0KGgo")
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("refused within the timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // Headers that never end: the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /images HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("connection closed within the timeout")
        .ok();

    assert_eq!(gateway.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn every_refusal_is_the_json_error() {
    let gateway = Gateway::start_with_queue(None, "").await;
    let get =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let canonical = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";
    let png = STANDARD.encode(fixture("small.png"));
    let upload = |query: &str, headers: &str| {
        format!(
            "POST /images{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{png}",
            png.len()
        )
    };
    let many_headers: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(String, u16, &str)> = vec![
        (get("/images/%FF"), 400, "invalid_id"),
        (get("/images/%FF/thumbnail"), 400, "invalid_id"),
        (
            get(&format!("/images/{}", "a".repeat(4000))),
            400,
            "invalid_id",
        ),
        (
            get(&format!("/images/{}", canonical.to_uppercase())),
            400,
            "invalid_id",
        ),
        (
            get(&format!("/images/urn:uuid:{canonical}")),
            400,
            "invalid_id",
        ),
        (
            get(&format!("/images/{}", canonical.replace('-', ""))),
            400,
            "invalid_id",
        ),
        (
            get(&format!("/images/{}", "a".repeat(65_000))),
            414,
            "uri_too_long",
        ),
        (get("/images?limit=SECRET"), 400, "invalid_parameter"),
        (get("/nowhere"), 404, "no_route"),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
                "b".repeat(20_000)
            ),
            431,
            "headers_too_large",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
            400,
            "invalid_host",
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n".to_owned(),
            400,
            "invalid_host",
        ),
        (
            upload(
                "",
                "Content-Type: image/png\r\nContent-Type: image/jpeg\r\n",
            ),
            400,
            "invalid_header",
        ),
        (
            upload("?name=a%E2%80%AEgnp.exe", "Content-Type: image/png\r\n"),
            400,
            "invalid_parameter",
        ),
        (
            upload("?name=a%E2%80%A8b", "Content-Type: image/png\r\n"),
            400,
            "invalid_parameter",
        ),
        (
            upload("?name=%FFSECRET", "Content-Type: image/png\r\n"),
            400,
            "invalid_parameter",
        ),
        (
            "DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let answer = gateway.raw(request.as_bytes()).await;
        let message = answer.assert_error(status, code);
        assert!(
            !message.contains("SECRET") && !message.contains("aaaa"),
            "{message}"
        );
        if message.contains("spelled") {
            assert!(message.ends_with(canonical), "{message}");
        }
    }
    // An HTTP/1.0 request needs no Host.
    let answer = gateway.raw(b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(answer.status(), 200);

    // Past hyper's 64 KiB buffer hyper refuses the request itself, and what it cannot parse
    // at all: the answer is still the JSON error, then the connection closes.
    for size in [120_000, 1_000_000] {
        let huge = format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: {}\r\n\r\n",
            "SECRET".repeat(size / 6)
        );
        let answer = gateway.raw(huge.as_bytes()).await;
        let message = answer.assert_error(431, "headers_too_large");
        assert!(!message.contains("SECRET"), "{message}");
    }
    for malformed in [
        &b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"[..],
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    ] {
        let answer = gateway.raw(malformed).await;
        answer.assert_error(400, "malformed_request");
    }
    assert_eq!(gateway.record_count().await, 0);
}

#[tokio::test]
async fn an_upload_at_the_limit_wrapped_in_crlf_is_accepted() {
    let gateway = Gateway::start_with_queue(None, "").await;
    // A real PNG padded to 52 427 800 bytes (decoders stop at IEND), under the 52 428 800
    // limit, as MIME-style base64 with a CRLF after every 64 characters.
    let mut image = fixture("small.png");
    image.resize(52_427_800, 0);
    let encoded = STANDARD.encode(&image);
    let mut wrapped = String::with_capacity(encoded.len() / 64 * 66 + 66);
    for line in encoded.as_bytes().chunks(64) {
        wrapped.push_str(std::str::from_utf8(line).unwrap());
        wrapped.push_str("\r\n");
    }
    let answer = gateway
        .request(
            Method::POST,
            "/images",
            &[("content-type", "image/png")],
            wrapped,
        )
        .await;
    assert_eq!(
        answer.status,
        202,
        "{:?}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["size"], 52_427_800);
    let record = gateway.wait_final(&answer.media_id()).await;
    assert_eq!(record["state"], "Completed", "{record}");
}

#[tokio::test]
async fn upload_memory_stays_within_its_budget() {
    // Room for two uploads of 20 MiB at once; one job at a time, so that decoding adds one
    // file's worth.
    let gateway = Gateway::start_with_queue(
        None,
        "{limits: {max_upload_bytes: 20971520, max_upload_memory_bytes: 44040192}, worker: {concurrency: 1}}",
    )
    .await;
    let id = gateway.upload_fixture("png-rgb.png").await;
    gateway.wait_final(&id).await;
    let before = gateway.peak_rss_kib();
    let mut image = fixture("small.png");
    image.resize(19_000_000, 0);
    let envelope = serde_json::json!({
        "data": STANDARD.encode(&image),
        "media_type": "image/png",
        "name": "padded.png",
    })
    .to_string();
    let request = format!(
        "POST /images HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{envelope}",
        envelope.len()
    )
    .into_bytes();
    let mut uploads = tokio::task::JoinSet::new();
    for _ in 0..6 {
        uploads.spawn(raw_exchange(gateway.address(), request.clone()));
    }
    let mut accepted = 0;
    for answer in uploads.join_all().await {
        match answer.status() {
            202 => accepted += 1,
            _ => {
                answer.assert_error(503, "overloaded");
            }
        }
    }
    assert!(accepted >= 2, "{accepted} accepted");
    let after = gateway.peak_rss_kib();
    eprintln!("peak RSS before {before} KiB, after 6 concurrent 19 MB envelopes {after} KiB");
    // The budget (42 MiB), one file being decoded (19 MB), and buffers. Reading each
    // envelope whole, as text, string and bytes, took about 70 MB an upload.
    assert!(
        after < before + 100 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
}

// On every back-end: the gateway's refusals, and the worker's reading of what the gateway
// stored (from the data directory or from S3).
async fn hostile_videos_end_as_clear_errors(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    // Each is a video by its magic bytes, and fails in the worker's probe or decode.
    for (name, code, says) in [
        ("audio-only.mp4", 422, "no video stream"),
        ("video-truncated.mp4", 422, "cannot decode video/mp4"),
        ("video-bomb.mp4", 413, "over the limit of 100000000 pixels"),
        ("video-bomb-100000.mp4", 422, "cannot decode video/mp4"),
    ] {
        let id = gateway.upload_fixture(name).await;
        let record = gateway.wait_final(&id).await;
        assert_eq!(record["state"], "Error", "{name}: {record}");
        assert_eq!(record["code"], code, "{name}: {record}");
        let message = record["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
        assert!(!message.contains("/raw/"), "{name}: no path in {message}");
        assert_eq!(record["duration"], serde_json::Value::Null, "{name}");
    }
    // An HLS playlist named as an MP4 is refused at the door; a PNG declared as a video too.
    let answer = gateway
        .upload("video/mp4", &fixture("hostile-hls.mp4"))
        .await;
    answer.assert_error(415, "media_type_mismatch");
    let answer = gateway.upload("video/webm", &fixture("png-rgb.png")).await;
    answer.assert_error(415, "media_type_mismatch");
    // The service is intact.
    let id = gateway.upload_fixture("video-h264.mp4").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
}

/// With `server.allowed_hosts`, a request naming another host (DNS rebinding: a page's own
/// name pointed at the service) is refused; without it any host is answered. A browser's
/// cross-site POST to the dashboard's actions is refused by its `Origin` or
/// `Sec-Fetch-Site`, with no API key configured.
#[tokio::test]
async fn foreign_hosts_and_cross_site_posts_are_refused() {
    let gateway = Gateway::start_with_queue(
        None,
        "server: {allowed_hosts: [thumbs.test, 127.0.0.1, '.fleet.test']}",
    )
    .await;
    for (host, status) in [
        ("thumbs.test", 200),
        ("THUMBS.test:8080", 200),
        ("a.fleet.test", 200),
        ("attacker.example", 400),
        ("thumbs.test.attacker.example", 400),
    ] {
        let answer = gateway
            .request(Method::GET, "/healthz", &[("host", host)], "")
            .await;
        assert_eq!(answer.status, status, "{host}");
        if status == 400 {
            answer.assert_error(400, "invalid_host");
        }
    }
    let retry = "/dashboard/dead/019abf5e-0000-7000-8000-000000000000/retry";
    for headers in [
        [
            ("origin", "http://attacker.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        [("origin", "null"), ("x-ignored", "")],
        [("sec-fetch-site", "same-site"), ("x-ignored", "")],
    ] {
        let answer = gateway.request(Method::POST, retry, &headers, "").await;
        answer.assert_error(403, "forbidden");
    }
    // The page's own request is let through (and finds no such record).
    let origin = gateway.base.clone();
    let answer = gateway
        .request(
            Method::POST,
            retry,
            &[
                ("origin", origin.as_str()),
                ("sec-fetch-site", "same-origin"),
            ],
            "",
        )
        .await;
    answer.assert_error(404, "not_found");

    let open = Gateway::start_with_queue(None, "").await;
    let answer = open
        .request(Method::GET, "/healthz", &[("host", "anything.example")], "")
        .await;
    assert_eq!(answer.status, 200);
}

/// A JPEG XL cut short (its first 3,000 of 21,712 bytes) ends `Error` 422, never a grey,
/// blocky thumbnail; one whose rendering needs more than `limits.max_alloc_bytes` (the
/// 10240² bomb under a raised pixel limit) is 413 at upload, from its header, naming the
/// limit.
#[tokio::test]
async fn a_cut_or_oversized_jpeg_xl_is_refused() {
    let gateway = Gateway::start(Backend::Embedded, "limits: {max_pixels: 200000000}").await;
    let whole = fixture("jxl-lossy.jxl");
    let id = gateway.upload("image/jxl", &whole[..3000]).await.media_id();
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 422, "{record}");
    assert_eq!(gateway.thumbnail(&id).await.status, 422);

    let answer = gateway.upload("image/jxl", &fixture("bomb-jxl.jxl")).await;
    answer.assert_error(413, "too_many_pixels");
    let message = answer.json()["error"]["message"].to_string();
    assert!(message.contains("max_alloc_bytes"), "{message}");
}

on_every_backend!(
    hostile_videos_end_as_clear_errors,
    bombs_of_every_format_are_refused_from_the_header,
    truncated_and_corrupt_files_of_every_format_end_final,
    tiny_and_disguised_files_are_refused,
    a_raw_file_corrupted_after_acceptance_ends_as_an_error,
);
