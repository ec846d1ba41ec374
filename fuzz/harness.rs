//! The checks each fuzz target makes, shared with `tests/fuzz_regressions.rs` (which replays
//! the inputs the fuzzers once crashed on).

use common::config::{LimitsConfig, ThumbnailConfig};
use common::message::JobVariant;
use common::variant::{Fit, Variant};
use gateway::body::{Base64Stream, EnvelopeParser};

/// The worker's decode → resize → encode path on arbitrary bytes, making three variants
/// (contain, cover, fill) from one decode; the first byte picks the declared media type. It
/// must return, whatever the bytes.
pub fn thumbnail(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let images: Vec<_> = common::media::ALL
        .into_iter()
        .filter(|media_type| !media_type.is_video())
        .collect();
    let media_type = images[usize::from(selector) % images.len()];
    // Smaller limits than the service's keep each run fast; the checks are the same.
    let limits = LimitsConfig {
        max_pixels: 4_000_000,
        max_alloc_bytes: 256 * 1024 * 1024,
        max_metadata_bytes: 64 * 1024,
        ..LimitsConfig::default()
    };
    let default = Variant::default_for(&ThumbnailConfig::default());
    let variants: Vec<JobVariant> = [
        (Fit::Contain, "100x100"),
        (Fit::Cover, "64x48"),
        (Fit::Fill, "x30"),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, (fit, size))| JobVariant {
        index: index as u16,
        variant: Variant {
            name: size.to_owned(),
            size: size.parse().expect("a valid size"),
            fit,
            ..default.clone()
        },
    })
    .collect();
    let _ = worker::thumbnail::make(image, media_type, &variants, &limits);
}

/// The worker's video path on arbitrary bytes: ffprobe and ffmpeg as the worker runs them
/// (file protocol only, forced demuxer, timeout, memory cap), then the poster through resize
/// and encode; the first byte picks the declared video type. It must return, with a poster
/// or an error, whatever the bytes.
pub fn video(data: &[u8]) {
    let Some((&selector, video)) = data.split_first() else {
        return;
    };
    let videos: Vec<_> = common::media::ALL
        .into_iter()
        .filter(|media_type| media_type.is_video())
        .collect();
    let media_type = videos[usize::from(selector) % videos.len()];
    let mut config = common::Config::default();
    config.limits.max_pixels = 4_000_000;
    config.video.timeout_secs = 10;
    config.video.max_memory_bytes = 1024 * 1024 * 1024;
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::io::Write::write_all(&mut file, video).expect("written");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let poster = runtime.block_on(worker::video::poster(file.path(), media_type, &config));
    if let Ok(poster) = poster {
        let variant = JobVariant {
            index: 0,
            variant: Variant::default_for(&ThumbnailConfig::default()),
        };
        let made =
            worker::thumbnail::make_from(poster.frame, media_type, &[variant], &config.limits);
        assert!(made.is_ok(), "a decoded poster is always thumbnailed");
    }
}

/// The gateway's body decoding on arbitrary bytes, fed in chunks of the size the first byte
/// picks: the streaming base64 decoder must agree with a one-piece decode; the streaming JSON
/// envelope parser must agree with a one-piece parse, and accept only what `serde_json` takes
/// for JSON.
pub fn upload_body(data: &[u8]) {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let limit = 1 << 20;
    let base64 = |chunk: usize| {
        let mut stream = Base64Stream::new(limit);
        body.chunks(chunk)
            .try_for_each(|piece| stream.push(piece))
            .and_then(|()| stream.finish())
            .ok()
    };
    assert_eq!(
        base64(chunk),
        base64(body.len().max(1)),
        "chunking changed the result"
    );

    let envelope = |chunk: usize| {
        let mut parser = EnvelopeParser::new(limit);
        body.chunks(chunk)
            .try_for_each(|piece| parser.push(piece))
            .and_then(|()| parser.finish())
            .ok()
            .map(|envelope| (envelope.source, envelope.name))
    };
    let streamed = envelope(chunk);
    assert_eq!(
        streamed,
        envelope(body.len().max(1)),
        "chunking changed the envelope"
    );
    if streamed.is_some() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_ok(),
            "an envelope that is not JSON was accepted"
        );
    }
}
