//! Base64 decoded as it streams in, under a limit on the decoded size.
//!
//! The standard alphabet; padding is optional, ASCII white space (line breaks of MIME-style
//! base64) is skipped, and a `data:<type>;base64,` prefix (what browsers produce) is accepted.
//! Decoding runs chunk by chunk as the body arrives, with the runtime-detected SIMD engine, into
//! one buffer: the encoded text is never held whole, and data whose decoded size passes the
//! limit is refused as soon as it does. Only decoded bytes count against the limit, whatever
//! the white space.

use base64::engine::general_purpose::PAD_INDIFFERENT;
use base64::engine::simd::Simd;
use base64::{DecodeSliceError, Engine};

use crate::error::ApiError;

/// Decodes a base64 body as it arrives.
#[derive(Debug)]
pub struct Base64Stream {
    engine: Simd,
    /// Bytes seen before knowing whether the body starts with a data URI.
    head: Option<Vec<u8>>,
    /// Base64 characters not decoded yet (at most one group of four, held back because it
    /// may carry padding).
    pending: Vec<u8>,
    /// Characters decoded so far, for error positions.
    consumed: u64,
    out: Vec<u8>,
    limit: u64,
}

/// The longest data URI prefix considered (`data:image/jpeg;base64,` is 23 bytes).
const MAX_PREFIX: usize = 256;

impl Base64Stream {
    /// A decoder refusing output over `limit` bytes. Its buffer starts empty: see
    /// [`Base64Stream::reserve`].
    pub fn new(limit: u64) -> Self {
        Self {
            engine: Simd::standard(PAD_INDIFFERENT),
            head: Some(Vec::new()),
            pending: Vec::new(),
            consumed: 0,
            out: Vec::new(),
            limit,
        }
    }

    /// Feeds the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        match self.head.take() {
            Some(mut head) => {
                head.extend_from_slice(chunk);
                match strip_data_uri(&head)? {
                    Some(rest) => self.feed(rest),
                    None => {
                        self.head = Some(head);
                        Ok(())
                    }
                }
            }
            None => self.feed(chunk),
        }
    }

    /// The buffer capacity that decoding `encoded` more bytes of input may need: the current
    /// one when it suffices, else at least double it (so that growth stays amortised), never
    /// more than the limit allows.
    pub fn capacity_for(&self, encoded: usize) -> usize {
        // Held-back input (a data URI prefix, a group of four) decodes along with the chunk.
        let held = self.head.as_ref().map_or(0, Vec::len) + self.pending.len();
        let needed = self.out.len() + (encoded + held).div_ceil(4) * 3;
        let capacity = self.out.capacity();
        if needed <= capacity {
            return capacity;
        }
        let most = usize::try_from(self.limit.saturating_add(3)).unwrap_or(usize::MAX);
        needed.max(capacity.saturating_mul(2)).min(most)
    }

    /// Grows the buffer to hold `capacity` decoded bytes.
    pub fn reserve(&mut self, capacity: usize) {
        self.out
            .reserve_exact(capacity.saturating_sub(self.out.len()));
    }

    /// Decodes what is left and returns the decoded bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, ApiError> {
        if let Some(head) = self.head.take() {
            let rest = strip_data_uri(&head)?.unwrap_or(&head);
            self.feed(rest)?;
        }
        let pending = std::mem::take(&mut self.pending);
        self.decode(&pending)?;
        if self.out.is_empty() {
            return Err(ApiError::EmptyBody);
        }
        Ok(self.out)
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        // White space is at most ' ' (0x20): a chunk whose smallest byte is above it (the
        // usual case, found by a min-reduction that vectorizes) decodes straight from the
        // chunk; otherwise the white space is filtered out first.
        if chunk.iter().fold(u8::MAX, |low, &byte| low.min(byte)) > b' ' {
            self.feed_clean(chunk)
        } else {
            let clean: Vec<u8> = chunk
                .iter()
                .copied()
                .filter(|byte| !byte.is_ascii_whitespace())
                .collect();
            self.feed_clean(&clean)
        }
    }

    /// Feeds characters free of white space. The last group of four is held back in
    /// `pending`, because it may end in padding; everything before it decodes now.
    fn feed_clean(&mut self, mut chars: &[u8]) -> Result<(), ApiError> {
        if !self.pending.is_empty() {
            let missing = (4 - self.pending.len() % 4) % 4;
            let (top_up, rest) = chars.split_at(missing.min(chars.len()));
            self.pending.extend_from_slice(top_up);
            chars = rest;
            if chars.is_empty() {
                return Ok(());
            }
            // More follows, so the held-back group is whole and not the last.
            let group = std::mem::take(&mut self.pending);
            self.decode_before_more(&group)?;
        }
        let ready = (chars.len().saturating_sub(1) / 4) * 4;
        self.decode_before_more(&chars[..ready])?;
        self.pending.extend_from_slice(&chars[ready..]);
        Ok(())
    }

    /// Decodes `chars`, which more data follows: they may not end in padding.
    fn decode_before_more(&mut self, chars: &[u8]) -> Result<(), ApiError> {
        if chars.last() == Some(&b'=') {
            return Err(ApiError::InvalidBase64(
                "padding ('=') before the end of the data".to_owned(),
            ));
        }
        self.decode(chars)
    }

    fn decode(&mut self, chars: &[u8]) -> Result<(), ApiError> {
        if chars.is_empty() {
            return Ok(());
        }
        let start = self.out.len();
        let most = chars.len().div_ceil(4) * 3;
        if (start + most) as u64 > self.limit.saturating_add(2) {
            return Err(ApiError::PayloadTooLarge { limit: self.limit });
        }
        self.out.resize(start + most, 0);
        let written = self
            .engine
            .decode_slice(chars, &mut self.out[start..])
            .map_err(|error| self.describe(error))?;
        self.out.truncate(start + written);
        if self.out.len() as u64 > self.limit {
            return Err(ApiError::PayloadTooLarge { limit: self.limit });
        }
        self.consumed += chars.len() as u64;
        Ok(())
    }

    fn describe(&self, error: DecodeSliceError) -> ApiError {
        use base64::DecodeError::*;
        let at = |offset: usize| self.consumed + offset as u64;
        ApiError::InvalidBase64(match error {
            DecodeSliceError::DecodeError(InvalidByte(offset, byte)) => {
                format!("invalid byte 0x{byte:02x} at position {}", at(offset))
            }
            DecodeSliceError::DecodeError(InvalidLength(_)) => {
                "the length is not that of base64 data (one character too many or too few)"
                    .to_owned()
            }
            DecodeSliceError::DecodeError(InvalidLastSymbol { offset, symbol, .. }) => format!(
                "invalid last character (byte 0x{symbol:02x}) at position {}",
                at(offset)
            ),
            DecodeSliceError::DecodeError(InvalidPadding) => "misplaced padding".to_owned(),
            DecodeSliceError::OutputSliceTooSmall => "internal buffer error".to_owned(),
        })
    }
}

/// If `head` starts with a data URI prefix, the rest after its comma; `None` while `head` is
/// too short to tell; `head` itself when there is no prefix.
fn strip_data_uri(head: &[u8]) -> Result<Option<&[u8]>, ApiError> {
    let trimmed = head.trim_ascii_start();
    const DATA: &[u8] = b"data:";
    if trimmed.len() < DATA.len() {
        // Too short to tell: wait for more unless it can no longer become "data:".
        let could_become = trimmed
            .iter()
            .zip(DATA)
            .all(|(byte, expected)| byte.to_ascii_lowercase() == *expected);
        return Ok(if could_become { None } else { Some(head) });
    }
    if !trimmed[..DATA.len()].eq_ignore_ascii_case(DATA) {
        return Ok(Some(head));
    }
    // The comma must come within MAX_PREFIX bytes however the body is chunked.
    match trimmed.iter().take(MAX_PREFIX + 1).position(|&b| b == b',') {
        Some(comma) => {
            let meta = String::from_utf8_lossy(&trimmed[DATA.len()..comma]).to_ascii_lowercase();
            if !meta.split(';').any(|part| part.trim() == "base64") {
                return Err(ApiError::InvalidBase64(
                    "the data URI is not base64 (no ;base64 before the comma)".to_owned(),
                ));
            }
            Ok(Some(&trimmed[comma + 1..]))
        }
        None if trimmed.len() > MAX_PREFIX => Err(ApiError::InvalidBase64(format!(
            "the data URI prefix has no comma within {MAX_PREFIX} bytes"
        ))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn decode_in_chunks(input: &[u8], chunk: usize, limit: u64) -> Result<Vec<u8>, ApiError> {
        let mut decoder = Base64Stream::new(limit);
        for piece in input.chunks(chunk) {
            decoder.push(piece)?;
        }
        decoder.finish()
    }

    #[test]
    fn decodes_in_any_chunking_with_or_without_padding_and_line_breaks() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let encoded = STANDARD.encode(&data);
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|line| format!("{}\r\n", std::str::from_utf8(line).unwrap()))
            .collect();
        let unpadded = encoded.trim_end_matches('=');
        for input in [encoded.as_str(), wrapped.as_str(), unpadded] {
            for chunk in [1, 3, 4, 5, 7, 64, 4096] {
                assert_eq!(
                    decode_in_chunks(input.as_bytes(), chunk, 10_000).unwrap(),
                    data
                );
            }
        }
    }

    #[test]
    fn accepts_a_data_uri_prefix() {
        let input = format!("data:image/png;base64,{}", STANDARD.encode(b"hello"));
        for chunk in [1, 2, 7, 100] {
            assert_eq!(
                decode_in_chunks(input.as_bytes(), chunk, 100).unwrap(),
                b"hello"
            );
        }
        let not_base64 = "data:image/png,hello";
        assert!(matches!(
            decode_in_chunks(not_base64.as_bytes(), 100, 100),
            Err(ApiError::InvalidBase64(_))
        ));
    }

    #[test]
    fn a_data_uri_prefix_is_judged_alike_however_it_is_chunked() {
        // Found by fuzzing: a comma past the prefix limit was accepted in one piece only.
        let input = format!(
            "data:image/{};base64,{}",
            "x".repeat(300),
            STANDARD.encode(b"hi")
        );
        for chunk in [1, 7, 64, input.len()] {
            assert!(
                matches!(
                    decode_in_chunks(input.as_bytes(), chunk, 100),
                    Err(ApiError::InvalidBase64(_))
                ),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn padding_inside_the_data_is_refused_however_it_is_chunked() {
        // Found by fuzzing: "=" ending a streamed segment was taken for the end of the data.
        let input = "QUFB=QUFBQUFB";
        for chunk in 1..=input.len() {
            assert!(
                matches!(
                    decode_in_chunks(input.as_bytes(), chunk, 100),
                    Err(ApiError::InvalidBase64(_))
                ),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn refuses_bad_characters_lengths_and_padding() {
        for bad in ["aGVsbG8*", "aGVsbG8=x", "a", "aGVsb", "aG=Vsbw=="] {
            assert!(
                matches!(
                    decode_in_chunks(bad.as_bytes(), 3, 100),
                    Err(ApiError::InvalidBase64(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_near_the_top_of_u64_do_not_overflow() {
        let encoded = STANDARD.encode([7u8; 100]);
        assert_eq!(
            decode_in_chunks(encoded.as_bytes(), 7, u64::MAX).unwrap(),
            [7u8; 100]
        );
    }

    #[test]
    fn refuses_empty_and_too_large() {
        assert!(matches!(
            decode_in_chunks(b"", 1, 10),
            Err(ApiError::EmptyBody)
        ));
        assert!(matches!(
            decode_in_chunks(b" \r\n", 1, 10),
            Err(ApiError::EmptyBody)
        ));
        let eleven = STANDARD.encode([7u8; 11]);
        assert!(matches!(
            decode_in_chunks(eleven.as_bytes(), 4, 10),
            Err(ApiError::PayloadTooLarge { limit: 10 })
        ));
        let ten = STANDARD.encode([7u8; 10]);
        assert_eq!(decode_in_chunks(ten.as_bytes(), 4, 10).unwrap().len(), 10);
    }

    #[test]
    fn agrees_with_the_base64_crate_on_random_bodies_and_chunkings() {
        // Short bodies mostly of base64 characters, with padding, white space and bad bytes
        // mixed in, cut in chunks of 1 to 12 bytes: the streamed result must be what the
        // base64 crate makes of the body with its white space removed (or an error when it
        // refuses it or it is empty).
        let oracle =
            base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, PAD_INDIFFERENT);
        let (common, rare) = (b"ABCDabcd0123", b"AQgw+/09=\n\r \t-*");
        let mut state = 0x1234_5678_9abc_def1_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        let mut valid = 0;
        for _ in 0..50_000 {
            let chunk = 1 + next() % 12;
            let body: Vec<u8> = (0..1 + next() % 40)
                .map(|_| match next() {
                    r if r % 4 == 0 => rare[r / 4 % rare.len()],
                    r => common[r / 4 % common.len()],
                })
                .collect();
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let expected = oracle.decode(&clean).ok().filter(|bytes| !bytes.is_empty());
            let streamed = decode_in_chunks(&body, chunk, 1 << 20).ok();
            assert_eq!(
                streamed,
                expected,
                "{:?} in chunks of {chunk}",
                String::from_utf8_lossy(&body)
            );
            valid += usize::from(expected.is_some());
        }
        assert!(valid > 5_000, "too few valid bodies to mean much: {valid}");
    }
}
