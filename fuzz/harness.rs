//! The checks each fuzz target makes, shared with `tests/fuzz_regressions.rs` (which replays
//! the inputs the fuzzers once crashed on).

use common::config::{LimitsConfig, ThumbnailConfig};
use gateway::body::{Base64Stream, Envelope, decode_base64};

/// The worker's decode → resize → encode path on arbitrary bytes; the first byte picks the
/// declared media type. It must return, whatever the bytes.
pub fn thumbnail(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let media_type = common::media::ALL[usize::from(selector) % common::media::ALL.len()];
    // Smaller limits than the service's keep each run fast; the checks are the same.
    let limits = LimitsConfig {
        max_pixels: 4_000_000,
        max_alloc_bytes: 256 * 1024 * 1024,
        ..LimitsConfig::default()
    };
    let _ = worker::thumbnail::make(image, media_type, &ThumbnailConfig::default(), &limits);
}

/// The gateway's body decoding on arbitrary bytes: the streaming base64 decoder fed in
/// chunks of the size the first byte picks must agree with a one-piece decode, and the JSON
/// envelope parser must return.
pub fn upload_body(data: &[u8]) {
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
