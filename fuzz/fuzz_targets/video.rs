//! The worker's video path, FFmpeg subprocesses included, on arbitrary bytes (see
//! `harness.rs`). Each run starts ffprobe and ffmpeg: slow per input, but it is what the
//! worker does with untrusted videos.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::video(data));
