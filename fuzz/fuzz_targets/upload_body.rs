//! The gateway's streaming base64 decoding and JSON envelope parsing (see `harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::upload_body(data));
