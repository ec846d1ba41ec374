//! Upload bodies, read as they stream in: decoded chunk by chunk, under a limit on the decoded
//! size, a memory budget, an idle timeout and a minimum rate.
//!
//! Two forms, one decoder ([`base64::Base64Stream`]):
//! - a raw base64 body ([`read_base64`]);
//! - a JSON envelope, `{"data": "<base64>", "media_type": ..., "name": ...}`, parsed as it
//!   streams so that `data` goes straight to the decoder ([`read_envelope`], [`envelope`]).
//!
//! And the file's own bytes, not encoded (`application/octet-stream`, [`read_bytes`]).
//!
//! Either way the upload costs one buffer of decoded bytes, grown only under the upload's
//! [`MemoryGrant`]. Only decoded bytes count against `limits.max_upload_bytes`; white space may
//! make the encoded body up to [`ENCODED_EXPANSION`] times the base64 text before it is refused.
//!
//! Time: each chunk must come within the idle timeout, and the body as a whole must keep up a
//! minimum average rate after a grace period ([`BodyTiming`]), so that a client trickling a
//! few bytes now and then cannot hold an upload slot for long.

pub mod base64;
pub mod envelope;

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::memory::MemoryGrant;
pub use base64::Base64Stream;
pub use envelope::{Envelope, EnvelopeParser};

/// How many bytes of body one base64 character may take with the white space around it: a
/// line break after every character still passes.
pub const ENCODED_EXPANSION: u64 = 4;

/// The most body bytes that may decode to at most `limit` bytes: the base64 text of `limit`
/// bytes with [`ENCODED_EXPANSION`] room for white space, plus 64 KiB for a data URI prefix
/// or the JSON around it.
pub fn encoded_limit(limit: u64) -> u64 {
    limit
        .div_ceil(3)
        .saturating_mul(4)
        .saturating_mul(ENCODED_EXPANSION)
        .saturating_add(64 * 1024)
}

/// How fast a body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyTiming {
    /// The longest wait for the next chunk.
    pub idle: Duration,
    /// How long a body may take before the minimum rate applies.
    pub grace: Duration,
    /// The minimum average rate, bytes per second, over the whole body after the grace
    /// period; 0 for none. A body may take `grace + received / min_rate`.
    pub min_rate: u64,
}

/// A body's progress against its [`BodyTiming`].
#[derive(Debug)]
struct Pace {
    timing: BodyTiming,
    started: Instant,
    received: u64,
}

impl Pace {
    fn new(timing: BodyTiming) -> Self {
        Self {
            timing,
            started: Instant::now(),
            received: 0,
        }
    }

    /// When the body falls below the minimum rate unless more arrives.
    fn deadline(&self) -> Option<Instant> {
        (self.timing.min_rate > 0).then(|| {
            let earned =
                Duration::from_secs_f64(self.received as f64 / self.timing.min_rate as f64);
            self.started + self.timing.grace + earned
        })
    }
}

/// The next chunk of data of `body`; `None` at its end. Refused (408) when it does not come
/// within the idle timeout, or the body falls below its minimum rate.
async fn next_chunk(body: &mut Body, pace: &mut Pace) -> Result<Option<Bytes>, ApiError> {
    loop {
        let idle = pace.timing.idle;
        let (wait, too_slow) = match pace.deadline() {
            Some(deadline) if deadline < Instant::now() + idle => {
                (deadline.saturating_duration_since(Instant::now()), true)
            }
            _ => (idle, false),
        };
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            Ok(frame) => frame,
            Err(_) if too_slow => {
                return Err(ApiError::TooSlow {
                    min_rate: pace.timing.min_rate,
                });
            }
            Err(_) => return Err(ApiError::RequestTimeout(idle.as_secs())),
        };
        match frame {
            // A body that ends short of its Content-Length was cut off (its client hung up):
            // what arrived is not the upload.
            None if hyper::body::Body::size_hint(body).lower() > 0 => {
                return Err(ApiError::BodyRead(
                    "the body ended before its Content-Length".to_owned(),
                ));
            }
            None => return Ok(None),
            Some(Err(error)) => return Err(ApiError::BodyRead(error.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    pace.received += data.len() as u64;
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The chunks of `body` as a stream, under `timing`, cut at `limit` bytes: what a multipart
/// parser reads. The bytes up to the limit are all yielded before the refusal (413
/// `request_too_large`), so that the refusal falls on the part the limit falls in, never on
/// one that ended before it however the bytes were framed.
pub fn chunks(
    body: &mut Body,
    timing: BodyTiming,
    limit: u64,
) -> impl futures_lite::Stream<Item = Result<Bytes, ApiError>> + Send + '_ {
    futures_lite::stream::unfold(
        (body, Pace::new(timing), false),
        move |(body, mut pace, failed)| async move {
            if failed {
                return None;
            }
            let before = pace.received;
            if before >= limit {
                // Everything up to the limit went out; is there more?
                return match next_chunk(body, &mut pace).await {
                    Ok(None) => None,
                    Ok(Some(_)) => {
                        Some((Err(ApiError::RequestTooLarge { limit }), (body, pace, true)))
                    }
                    Err(error) => Some((Err(error), (body, pace, true))),
                };
            }
            match next_chunk(body, &mut pace).await {
                Ok(Some(mut data)) => {
                    let room = usize::try_from(limit - before).unwrap_or(usize::MAX);
                    data.truncate(room);
                    Some((Ok(data), (body, pace, false)))
                }
                Ok(None) => None,
                Err(error) => Some((Err(error), (body, pace, true))),
            }
        },
    )
}

/// What a body is decoded by.
trait Sink {
    fn capacity_for(&self, encoded: usize) -> usize;
    fn reserve(&mut self, capacity: usize);
    fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError>;
}

impl Sink for Base64Stream {
    fn capacity_for(&self, encoded: usize) -> usize {
        Base64Stream::capacity_for(self, encoded)
    }
    fn reserve(&mut self, capacity: usize) {
        Base64Stream::reserve(self, capacity);
    }
    fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        Base64Stream::push(self, chunk)
    }
}

impl Sink for EnvelopeParser {
    fn capacity_for(&self, encoded: usize) -> usize {
        EnvelopeParser::capacity_for(self, encoded)
    }
    fn reserve(&mut self, capacity: usize) {
        EnvelopeParser::reserve(self, capacity);
    }
    fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        EnvelopeParser::push(self, chunk)
    }
}

/// A body taken as it is, up to its limit.
struct Verbatim {
    bytes: Vec<u8>,
    limit: u64,
}

impl Sink for Verbatim {
    fn capacity_for(&self, encoded: usize) -> usize {
        let most = usize::try_from(self.limit).unwrap_or(usize::MAX);
        self.bytes.len().saturating_add(encoded).min(most)
    }
    fn reserve(&mut self, capacity: usize) {
        self.bytes
            .reserve(capacity.saturating_sub(self.bytes.len()));
    }
    fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        if (self.bytes.len() + chunk.len()) as u64 > self.limit {
            return Err(ApiError::PayloadTooLarge { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }
}

/// Streams `body` into `sink`, growing its buffer under `grant`: by the whole estimate at once
/// when `content_length` is known, else as the chunks come.
async fn stream_into(
    body: &mut Body,
    sink: &mut impl Sink,
    limit: u64,
    content_length: Option<u64>,
    timing: BodyTiming,
    grant: &mut MemoryGrant,
) -> Result<(), ApiError> {
    let max_encoded = encoded_limit(limit);
    if let Some(length) = content_length {
        if length > max_encoded {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let estimate = sink.capacity_for(usize::try_from(length).unwrap_or(usize::MAX));
        grant.grow_to(estimate).await?;
        sink.reserve(estimate);
    }
    let mut pace = Pace::new(timing);
    while let Some(data) = next_chunk(body, &mut pace).await? {
        if pace.received > max_encoded {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        let capacity = sink.capacity_for(data.len());
        grant.grow_to(capacity).await?;
        sink.reserve(capacity);
        sink.push(&data)?;
    }
    Ok(())
}

/// Reads a raw base64 body, decoding as it streams in.
pub async fn read_base64(
    body: &mut Body,
    limit: u64,
    content_length: Option<u64>,
    timing: BodyTiming,
    grant: &mut MemoryGrant,
) -> Result<Vec<u8>, ApiError> {
    let mut decoder = Base64Stream::new(limit);
    stream_into(body, &mut decoder, limit, content_length, timing, grant).await?;
    decoder.finish()
}

/// Reads a body that is the file's own bytes, up to `limit` of them.
pub async fn read_bytes(
    body: &mut Body,
    limit: u64,
    content_length: Option<u64>,
    timing: BodyTiming,
    grant: &mut MemoryGrant,
) -> Result<Vec<u8>, ApiError> {
    if content_length.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut sink = Verbatim {
        bytes: Vec::new(),
        limit,
    };
    stream_into(body, &mut sink, limit, content_length, timing, grant).await?;
    Ok(sink.bytes)
}

/// Reads a JSON envelope, decoding its `data` as it streams in.
pub async fn read_envelope(
    body: &mut Body,
    limit: u64,
    content_length: Option<u64>,
    timing: BodyTiming,
    grant: &mut MemoryGrant,
) -> Result<Envelope, ApiError> {
    let mut parser = EnvelopeParser::new(limit);
    stream_into(body, &mut parser, limit, content_length, timing, grant).await?;
    parser.finish()
}

/// How long a refused body is still read (and discarded) before the connection closes.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// How much of a refused body is read (and discarded) at most.
const LINGER_BYTES: usize = 128 * 1024 * 1024;

/// Reads and discards what is left of a refused body, for a bounded time and size: a lingering
/// close, so that a client still sending reads the refusal instead of a reset connection.
pub async fn drain(mut body: Body) {
    let discard = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |data| data.len());
            if read > LINGER_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_space_does_not_count_against_the_limit() {
        // 52 427 800 bytes, base64 with CRLF after every 64 characters.
        let limit = 52_428_800;
        let decoded = 52_427_800u64;
        let chars = decoded.div_ceil(3) * 4;
        let wrapped = chars + chars.div_ceil(64) * 2;
        assert!(wrapped <= encoded_limit(limit));
        // Even a line break after every character.
        assert!(chars * 3 <= encoded_limit(limit));
        assert_eq!(encoded_limit(u64::MAX), u64::MAX);
    }

    /// A body fed through a channel, and its sender.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, Body) {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(1);
        let frames = futures_lite::stream::unfold(receiver, |mut receiver| async move {
            let data = receiver.recv().await?;
            Some((
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(data)),
                receiver,
            ))
        });
        (sender, Body::new(http_body_util::StreamBody::new(frames)))
    }

    #[tokio::test]
    async fn a_trickled_body_is_cut_at_its_minimum_rate() {
        let (sender, mut body) = channel_body();
        let timing = BodyTiming {
            idle: Duration::from_secs(5),
            grace: Duration::from_millis(200),
            min_rate: 1000,
        };
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if sender.send(Bytes::from_static(b"QUFB")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let mut pace = Pace::new(timing);
        let started = Instant::now();
        let outcome = loop {
            match next_chunk(&mut body, &mut pace).await {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        assert!(matches!(outcome, Err(ApiError::TooSlow { min_rate: 1000 })));
        // 200 ms of grace plus the few milliseconds its bytes earned.
        assert!(started.elapsed() < Duration::from_secs(1));
        trickle.abort();
    }
}
