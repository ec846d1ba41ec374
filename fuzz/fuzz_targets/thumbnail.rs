//! The worker's decode → resize → encode path on arbitrary bytes. The first byte picks the
//! declared media type. Any panic that escapes, or a crash, is a finding; a clean error is not.
#![no_main]

use common::config::{LimitsConfig, ThumbnailConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
