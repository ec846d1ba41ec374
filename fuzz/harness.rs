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
    let media_type = common::media::ALL[usize::from(selector) % common::media::ALL.len()];
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
