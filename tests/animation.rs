//! Animated thumbnails end to end through a real gateway: every frame of an animated GIF
//! and WebP kept, composed as FFmpeg (GIF) and libwebp (WebP) compose them, with the
//! source's timing and loops, as animated WebP or GIF; resized frames beside libvips's
//! thumbnails of the same frames; a video's preview beside the frames FFmpeg samples; frame
//! and pixel counts refused from the headers (the 10,000-frame GIF), and `animated` with a
//! format that cannot animate refused at the door.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::config::LimitsConfig;
use common::media::MediaType;
use hyper::Method;
use image::{AnimationDecoder, RgbaImage};
use serde_json::Value;
use support::{Backend, Gateway, fixture, fixtures_dir, mean_difference};

/// Uploads `bytes` as `media_type` with `query`; gives the answer.
async fn post(gateway: &Gateway, media_type: &str, bytes: &[u8], query: &str) -> support::Answer {
    gateway
        .request(
            Method::POST,
            &format!("/images?{query}"),
            &[("content-type", media_type)],
            STANDARD.encode(bytes),
        )
        .await
}

/// Uploads `bytes` with `query`, waits for the record; gives it and the first variant's
/// bytes when it completed.
async fn made(gateway: &Gateway, media_type: &str, bytes: &[u8], query: &str) -> (Value, Vec<u8>) {
    let answer = post(gateway, media_type, bytes, query).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let id = answer.media_id();
    let record = gateway.wait_final(&id).await;
    if record["state"] != "Completed" {
        return (record, Vec::new());
    }
    let name = record["thumbnails"][0]["name"].as_str().unwrap().to_owned();
    let answer = gateway
        .request(
            Method::GET,
            &format!("/images/{id}/thumbnails/{name}"),
            &[("accept", "image/*")],
            Bytes::new(),
        )
        .await;
    assert_eq!(answer.status, 200);
    (record, answer.body.to_vec())
}

/// The frames of an animated WebP or GIF and how long each shows (ms): WebP through
/// libwebp's animation decoder, GIF through the `image` crate's decoder.
fn frames(bytes: &[u8], media_type: MediaType) -> Vec<(RgbaImage, u32)> {
    match media_type {
        MediaType::Gif => image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes))
            .unwrap()
            .into_frames()
            .map(|frame| {
                let frame = frame.unwrap();
                let (numerator, denominator) = frame.delay().numer_denom_ms();
                (frame.into_buffer(), numerator / denominator)
            })
            .collect(),
        _ => {
            let mut source =
                worker::animation::frames(bytes, media_type, &LimitsConfig::default()).unwrap();
            let mut out = Vec::new();
            while let Some((frame, duration)) = source.next().unwrap() {
                out.push((frame.to_rgba8(), duration));
            }
            out
        }
    }
}

/// The frames of a GIF of `width`×`height` as FFmpeg composes them.
fn ffmpeg_frames(gif: &[u8], (width, height): (u32, u32)) -> Vec<RgbaImage> {
    let mut file = tempfile::NamedTempFile::with_suffix(".gif").unwrap();
    std::io::Write::write_all(&mut file, gif).unwrap();
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file.path())
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact((width * height * 4) as usize)
        .map(|chunk| RgbaImage::from_raw(width, height, chunk.to_vec()).unwrap())
        .collect()
}

/// The reference frames `expected/anim/{name}-NN.png`.
fn reference(name: &str) -> Vec<RgbaImage> {
    let dir = fixtures_dir().join("expected/anim");
    (1..)
        .map(|n| dir.join(format!("{name}-{n:02}.png")))
        .take_while(|path| path.exists())
        .map(|path| image::open(path).unwrap().to_rgba8())
        .collect()
}

/// libvips's thumbnails of every frame, cut from its strip `expected/anim/{name}.png`.
fn libvips_strip(name: &str, frames: u32) -> Vec<RgbaImage> {
    let strip = image::open(fixtures_dir().join(format!("expected/anim/{name}.png")))
        .unwrap()
        .to_rgba8();
    let height = strip.height() / frames;
    (0..frames)
        .map(|i| image::imageops::crop_imm(&strip, 0, i * height, strip.width(), height).to_image())
        .collect()
}

/// The durations and plays `tests/fixtures/anim-timing.json` gives for `name`.
fn timing(name: &str) -> (Vec<u32>, u16) {
    let json: Value =
        serde_json::from_slice(&std::fs::read(fixtures_dir().join("anim-timing.json")).unwrap())
            .unwrap();
    let durations = json[name]["durations_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as u32)
        .collect();
    (durations, json[name]["plays"].as_u64().unwrap() as u16)
}

/// The largest difference of one channel between two frames, colour counted only where
/// either is not transparent.
fn worst_difference(ours: &RgbaImage, theirs: &RgbaImage) -> u8 {
    assert_eq!(ours.dimensions(), theirs.dimensions());
    ours.pixels()
        .zip(theirs.pixels())
        .map(|(a, b)| {
            let channels = if a[3] == 0 && b[3] == 0 { 3..4 } else { 0..4 };
            channels.map(|c| a[c].abs_diff(b[c])).max().unwrap()
        })
        .max()
        .unwrap()
}

#[tokio::test]
async fn every_frame_is_kept_with_its_timing() {
    let gateway = Gateway::start(Backend::Embedded, "").await;

    // The GIF at its own size, lossless: exactly FFmpeg's frames, each for its own time,
    // played as often.
    let gif = fixture("anim-disposal.gif");
    let (record, webp) = made(
        &gateway,
        "image/gif",
        &gif,
        "animated=true&sizes=96x64&format=webp&lossless=true",
    )
    .await;
    assert_eq!(record["state"], "Completed", "{record}");
    let thumbnail = &record["thumbnails"][0];
    assert_eq!(thumbnail["media_type"], "image/webp");
    assert_eq!(thumbnail["frames"], 9);
    assert_eq!(thumbnail["request"]["animated"], true);
    let ours = frames(&webp, MediaType::Webp);
    let (durations, plays) = timing("anim-disposal.gif");
    assert_eq!(ours.iter().map(|f| f.1).collect::<Vec<_>>(), durations);
    let facts = worker::animation::webp::facts(&webp).unwrap();
    assert_eq!((facts.frames, facts.loops), (9, plays));
    for (index, ((frame, _), theirs)) in ours.iter().zip(reference("anim-disposal")).enumerate() {
        assert_eq!(worst_difference(frame, &theirs), 0, "frame {}", index + 1);
    }

    // The WebP at its own size, lossy at 90: within lossy compression of libwebp's frames.
    let photo = fixture("anim-photo.webp");
    let (record, webp) = made(
        &gateway,
        "image/webp",
        &photo,
        "animated=true&sizes=120x75&format=webp&quality=90",
    )
    .await;
    assert_eq!(record["thumbnails"][0]["frames"], 8, "{record}");
    let ours = frames(&webp, MediaType::Webp);
    let (durations, plays) = timing("anim-photo.webp");
    assert_eq!(ours.iter().map(|f| f.1).collect::<Vec<_>>(), durations);
    assert_eq!(worker::animation::webp::facts(&webp).unwrap().loops, plays);
    for (index, ((frame, _), theirs)) in ours.iter().zip(reference("anim-photo")).enumerate() {
        let difference = mean_difference(frame, &theirs);
        assert!(difference < 2.0, "frame {}: {difference:.2}", index + 1);
    }

    // GIF out (format=gif): the same frames (their colours fit GIF's tables exactly), the
    // same times in hundredths.
    let (record, out) = made(
        &gateway,
        "image/gif",
        &gif,
        "animated=true&sizes=96x64&format=gif",
    )
    .await;
    assert_eq!(
        record["thumbnails"][0]["media_type"], "image/gif",
        "{record}"
    );
    let ours = frames(&out, MediaType::Gif);
    assert_eq!(
        ours.iter().map(|f| f.1).collect::<Vec<_>>(),
        timing("anim-disposal.gif").0
    );
    for (index, ((frame, _), theirs)) in ours.iter().zip(reference("anim-disposal")).enumerate() {
        assert_eq!(worst_difference(frame, &theirs), 0, "frame {}", index + 1);
    }
    // FFmpeg reads it the same (it restores a disposed opaque frame to the background
    // colour, where the `image` crate and browsers clear it: every frame declares a
    // transparent index so that both agree).
    let by_ffmpeg = ffmpeg_frames(&out, (96, 64));
    assert_eq!(by_ffmpeg.len(), 9);
    for (index, (frame, theirs)) in by_ffmpeg.iter().zip(reference("anim-disposal")).enumerate() {
        assert_eq!(
            worst_difference(frame, &theirs),
            0,
            "FFmpeg's frame {}",
            index + 1
        );
    }

    // Without `animated`, the first frame, as ever.
    let (record, _) = made(&gateway, "image/gif", &gif, "sizes=96x64").await;
    assert_eq!(
        record["thumbnails"][0]["media_type"], "image/jpeg",
        "{record}"
    );
    assert!(record["thumbnails"][0].get("frames").is_none(), "{record}");
}

#[tokio::test]
async fn resized_frames_are_libvips_thumbnails_of_the_same_frames() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    for (name, media_type, query, strip, count) in [
        (
            "anim-photo.webp",
            "image/webp",
            "animated=true&sizes=60x&lossless=true",
            "anim-photo-60",
            8,
        ),
        (
            "anim-disposal.gif",
            "image/gif",
            "animated=true&sizes=48x&lossless=true",
            "anim-disposal-48",
            9,
        ),
    ] {
        let (record, webp) = made(&gateway, media_type, &fixture(name), query).await;
        assert_eq!(
            record["thumbnails"][0]["media_type"], "image/webp",
            "{name}: {record}"
        );
        let ours = frames(&webp, MediaType::Webp);
        let theirs = libvips_strip(strip, count);
        assert_eq!(ours.len(), theirs.len(), "{name}");
        for (index, ((frame, _), theirs)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(frame.dimensions(), theirs.dimensions(), "{name}");
            let difference = mean_difference(frame, theirs);
            println!("{name} frame {}: {difference:.2} from libvips", index + 1);
            assert!(
                difference < 3.0,
                "{name} frame {}: {difference:.2}",
                index + 1
            );
        }
    }
}

#[tokio::test]
async fn a_video_gives_a_preview_of_its_start() {
    let gateway = Gateway::start(Backend::Embedded, "thumbnail: {preview_secs: 2}\n").await;
    let video = fixture("video-h264.mp4");
    let (record, webp) = made(
        &gateway,
        "video/mp4",
        &video,
        "animated=true&sizes=160x&lossless=true",
    )
    .await;
    assert_eq!(record["state"], "Completed", "{record}");
    // 2 s of a 25 fps video at 10 frames a second.
    assert_eq!(record["thumbnails"][0]["frames"], 20, "{record}");
    let ours = frames(&webp, MediaType::Webp);
    assert_eq!(ours.len(), 20);
    assert!(ours.iter().all(|(_, duration)| *duration == 100));
    // FFmpeg's own frames at the same times and size.
    let (width, height) = ours[0].0.dimensions();
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-t", "2", "-i"])
        .arg(fixtures_dir().join("video-h264.mp4"))
        .args([
            "-vf",
            &format!("fps=10,scale={width}:{height}:flags=lanczos"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba",
            "-",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let size = (width * height * 4) as usize;
    let theirs: Vec<RgbaImage> = output
        .stdout
        .chunks_exact(size)
        .map(|chunk| RgbaImage::from_raw(width, height, chunk.to_vec()).unwrap())
        .collect();
    assert_eq!(theirs.len(), 20);
    for (index, ((frame, _), theirs)) in ours.iter().zip(&theirs).enumerate() {
        let difference = mean_difference(frame, theirs);
        println!("preview frame {}: {difference:.2} from FFmpeg", index + 1);
        assert!(difference < 3.5, "frame {}: {difference:.2}", index + 1);
    }
    // A frame a tenth of a second out is further away than the tolerance: the test sees
    // the timing, not only the picture.
    let shifted = mean_difference(&ours[0].0, &theirs[1]);
    println!("the first frame beside FFmpeg's second: {shifted:.2}");
    assert!(shifted > 3.5, "{shifted:.2}");

    // The frame limit spreads fewer frames over the same time.
    let gateway = Gateway::start(
        Backend::Embedded,
        "thumbnail: {preview_secs: 2}\nlimits: {max_frames: 5}\n",
    )
    .await;
    let (record, webp) = made(
        &gateway,
        "video/mp4",
        &video,
        "animated=true&sizes=160x&format=gif",
    )
    .await;
    assert_eq!(record["thumbnails"][0]["frames"], 5, "{record}");
    let ours = frames(&webp, MediaType::Gif);
    assert_eq!(ours.len(), 5);
    assert!(
        ours.iter().all(|(_, duration)| *duration == 400),
        "{:?}",
        ours.iter().map(|f| f.1).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn animations_over_the_limits_are_refused_from_their_headers() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    // 10,000 frames: refused before a frame is decoded, naming the limit.
    let bomb = fixture("hostile-gif-frames.gif");
    let started = std::time::Instant::now();
    let (record, _) = made(&gateway, "image/gif", &bomb, "animated=true").await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 413, "{record}");
    let message = record["message"].as_str().unwrap();
    assert!(message.contains("limits.max_frames"), "{message}");
    println!("the 10,000-frame GIF refused in {:?}", started.elapsed());
    // Its first frame is still a thumbnail.
    let (record, _) = made(&gateway, "image/gif", &bomb, "").await;
    assert_eq!(record["state"], "Completed", "{record}");

    // Frames × pixels over max_animation_pixels: 9 frames of 96×64 are 55,296.
    let gateway =
        Gateway::start(Backend::Embedded, "limits: {max_animation_pixels: 50000}\n").await;
    let (record, _) = made(
        &gateway,
        "image/gif",
        &fixture("anim-disposal.gif"),
        "animated=true",
    )
    .await;
    assert_eq!(record["code"], 413, "{record}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_animation_pixels"),
        "{record}"
    );

    // `animated` with a format that cannot animate, or not a yes or no: 400 at the door.
    for query in [
        "animated=true&format=jpeg",
        "animated=true&format=png",
        "animated=often",
    ] {
        let answer = post(&gateway, "image/gif", &fixture("anim-disposal.gif"), query).await;
        assert_eq!(answer.status, 400, "{query}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["error"]["parameter"], "animated", "{query}: {body}");
    }
}

#[tokio::test]
async fn gif_is_an_output_format_for_stills_too() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    let (record, gif) = made(
        &gateway,
        "image/png",
        &fixture("png-rgba.png"),
        "format=gif",
    )
    .await;
    assert_eq!(
        record["thumbnails"][0]["media_type"], "image/gif",
        "{record}"
    );
    let decoded = image::load_from_memory_with_format(&gif, image::ImageFormat::Gif).unwrap();
    let width = record["thumbnails"][0]["width"].as_u64().unwrap() as u32;
    assert_eq!(decoded.width(), width);
}
