//! The gateway's body decoding on arbitrary bytes: the streaming base64 decoder fed in chunks
//! of every size the first byte picks (it must agree with a one-piece decode), and the JSON
//! envelope parser.
#![no_main]

use gateway::body::{Base64Stream, Envelope, decode_base64};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
        assert_eq!(streamed.as_ref().ok(), whole.as_ref().ok(), "chunking changed the result");
    }
    let _ = serde_json::from_slice::<Envelope>(body);
});
