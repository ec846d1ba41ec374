//! LZW, as GIF frames and TIFF strips use it, decoded as back-references.
//!
//! Every LZW string is an earlier stretch of the output plus one byte: the string a new code
//! names is the previous code's string followed by the first byte of the current one, and the
//! two lie side by side in the output. So the table holds, for each code, where its string
//! starts in the output and how long it is, and decoding a code copies that stretch forward, as
//! an LZ77 back-reference. The decoder writes into a buffer whose first bytes are the literal
//! values themselves, so a literal is a one-byte back-reference too and every code takes the
//! same path; strings of up to 16 bytes are copied 16 bytes at a time.
//!
//! The two dialects differ in bit order and in when the code width grows: GIF packs codes from
//! the least significant bit and widens when the table reaches the next power of two; TIFF packs
//! from the most significant bit and widens one code earlier. A full table (4,096 codes) stops
//! growing until the next clear code, as both formats require.
//!
//! The `gif` and `tiff` crates decode LZW through weezl 0.1, which walks each string backwards
//! through a prefix table. This is 2.7 times as fast on a photograph's TIFF strips, and more
//! on GIF frames (`cargo bench --bench micro -- lzw`; BENCHMARKS.md). Out of bounds it cannot
//! go: every copy is a checked slice of the buffer, and a code the table does not hold yet is
//! an error.

/// The most codes a table holds (12-bit codes).
const MAX_CODES: usize = 4096;

/// The widest copy: strings this long or shorter are copied in one fixed-size move.
const WIDE: usize = 16;

/// How codes are packed, and when their width grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Least significant bit first; the width grows when the table reaches `1 << width`.
    Gif,
    /// Most significant bit first; the width grows one code earlier ("early change").
    Tiff,
}

/// Why a stream could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LzwError {
    /// A code past the end of the table, or a string code before any literal.
    #[error("an LZW code names no string yet")]
    InvalidCode,
    /// A minimum code size this decoder does not take.
    #[error("LZW minimum code size {0} is outside 2 to 8")]
    CodeSize(u8),
}

/// An LZW decoder: its table and output buffer, reused from one stream to the next.
pub struct Decoder {
    /// Where each code's string starts in `buffer`.
    starts: Box<[usize; MAX_CODES]>,
    /// Each code's string length; 0 for the clear and end codes.
    lens: Box<[u16; MAX_CODES]>,
    /// The literal values, then the output, then room for one wide copy; kept at the
    /// largest size a stream has needed.
    buffer: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            starts: Box::new([0; MAX_CODES]),
            lens: Box::new([0; MAX_CODES]),
            buffer: Vec::new(),
        }
    }
}

impl Decoder {
    /// Decodes `input`, a stream whose literals are `min_size` bits wide, to at most `max`
    /// bytes. Decoding stops at the end code, at the end of the input, or when `max` bytes
    /// are out, whichever comes first; the answer is what came out (fewer than `max` bytes
    /// when the stream is short).
    pub fn decode(
        &mut self,
        dialect: Dialect,
        min_size: u8,
        input: &[u8],
        max: usize,
    ) -> Result<&[u8], LzwError> {
        if !(2..=8).contains(&min_size) {
            return Err(LzwError::CodeSize(min_size));
        }
        let clear = 1usize << min_size;
        // Grown, never cleared: every byte handed out is written by this stream first.
        if self.buffer.len() < clear + max + WIDE {
            self.buffer.resize(clear + max + WIDE, 0);
        }
        let written = self.run(dialect, u32::from(min_size), input, max)?;
        Ok(&self.buffer[clear..clear + written])
    }

    /// The decoding loop; returns how many bytes it wrote after the literals.
    fn run(
        &mut self,
        dialect: Dialect,
        min_size: u32,
        input: &[u8],
        max: usize,
    ) -> Result<usize, LzwError> {
        let clear = 1u32 << min_size;
        let end = clear + 1;
        let early = u32::from(dialect == Dialect::Tiff);
        let (starts, lens, buffer) = (&mut *self.starts, &mut *self.lens, &mut self.buffer);
        for literal in 0..clear {
            starts[literal as usize] = literal as usize;
            lens[literal as usize] = 1;
            buffer[literal as usize] = literal as u8;
        }
        lens[clear as usize] = 0;
        lens[end as usize] = 0;
        let base = clear as usize;
        let limit = base + max;
        let mut bits = Bits::new(dialect, input);
        let mut width = min_size + 1;
        let mut next = clear + 2;
        let mut grow_at = (1 << width) - early;
        // The previous string, where it starts and its length; 0 when there is none (at the
        // start and after a clear code).
        let (mut previous_start, mut previous_len) = (0usize, 0u32);
        let mut at = base;
        while let Some(code) = bits.take(width) {
            let len = u32::from(lens[code as usize]);
            // Where the string is, its length, and whether it is already written.
            let (start, count, written) = if code < next && len != 0 {
                (starts[code as usize], len as usize, false)
            } else if code == clear {
                width = min_size + 1;
                next = clear + 2;
                grow_at = (1 << width) - early;
                previous_len = 0;
                continue;
            } else if code == end {
                break;
            } else if code == next && previous_len != 0 {
                // The code being defined: the previous string and its own first byte, which
                // the copy reaches only once it is written, so it is written apart.
                let (start, count) = (previous_start, previous_len as usize + 1);
                let room = (limit - at).min(count);
                buffer.copy_within(start..start + room.min(count - 1), at);
                if room < count {
                    return Ok(at + room - base);
                }
                buffer[at + count - 1] = buffer[start];
                (start, count, true)
            } else {
                return Err(LzwError::InvalidCode);
            };
            if written {
                // The code being defined, copied above.
            } else if count <= WIDE && at + WIDE <= limit {
                // The bytes after the string are written over by the codes that follow.
                buffer.copy_within(start..start + WIDE, at);
            } else {
                let room = (limit - at).min(count);
                buffer.copy_within(start..start + room, at);
                if room < count {
                    return Ok(at + room - base);
                }
            }
            // The new code: the previous string and this one's first byte.
            if previous_len != 0 && (next as usize) < MAX_CODES {
                starts[next as usize] = previous_start;
                lens[next as usize] = (previous_len + 1) as u16;
                next += 1;
                if next >= grow_at && width < 12 {
                    width += 1;
                    grow_at = (1 << width) - early;
                }
            }
            (previous_start, previous_len) = (at, count as u32);
            at += count;
        }
        Ok(at.min(limit) - base)
    }
}

/// The codes of a stream, read through a 64-bit window.
struct Bits<'a> {
    dialect: Dialect,
    input: &'a [u8],
    /// The next unread byte of `input`.
    at: usize,
    /// Unread bits: the low `count` bits (GIF) or the high `count` bits (TIFF).
    window: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(dialect: Dialect, input: &'a [u8]) -> Self {
        Self {
            dialect,
            input,
            at: 0,
            window: 0,
            count: 0,
        }
    }

    /// The next `width`-bit code, or none at the end of the input.
    #[inline(always)]
    fn take(&mut self, width: u32) -> Option<u32> {
        if self.count < width {
            self.refill();
            if self.count < width {
                return None;
            }
        }
        let code = match self.dialect {
            Dialect::Gif => {
                let code = self.window & ((1 << width) - 1);
                self.window >>= width;
                code
            }
            Dialect::Tiff => {
                let code = self.window >> (64 - width);
                self.window <<= width;
                code
            }
        };
        self.count -= width;
        Some(code as u32)
    }

    /// Tops the window up to at least 56 bits, or to the end of the input. Eight bytes are
    /// read at once where there are eight; the bits past the whole bytes taken are the same
    /// bits the next read ORs in again.
    fn refill(&mut self) {
        if let Some(bytes) = self.input.get(self.at..self.at + 8) {
            let bytes: [u8; 8] = bytes.try_into().expect("eight bytes");
            match self.dialect {
                Dialect::Gif => self.window |= u64::from_le_bytes(bytes) << self.count,
                Dialect::Tiff => self.window |= u64::from_be_bytes(bytes) >> self.count,
            }
            let taken = (63 - self.count) / 8;
            self.at += taken as usize;
            self.count += taken * 8;
            return;
        }
        while self.count <= 56 && self.at < self.input.len() {
            let byte = u64::from(self.input[self.at]);
            match self.dialect {
                Dialect::Gif => self.window |= byte << self.count,
                Dialect::Tiff => self.window |= byte << (56 - self.count),
            }
            self.at += 1;
            self.count += 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that compress poorly (xorshift noise over `symbols` values) or well (runs and
    /// repeats), as photographs and drawings do.
    fn data(len: usize, symbols: u32, runs: bool) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = (state % u64::from(symbols)) as u8;
            let repeat = if runs {
                (state >> 40) as usize % 40 + 1
            } else {
                1
            };
            out.extend(std::iter::repeat_n(value, repeat.min(len - out.len())));
        }
        out
    }

    fn encode(dialect: Dialect, min_size: u8, data: &[u8]) -> Vec<u8> {
        match dialect {
            Dialect::Gif => weezl::encode::Encoder::new(weezl::BitOrder::Lsb, min_size),
            Dialect::Tiff => {
                weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, min_size)
            }
        }
        .encode(data)
        .unwrap()
    }

    #[test]
    fn decodes_what_weezl_encodes_in_both_dialects() {
        let mut decoder = Decoder::default();
        for dialect in [Dialect::Gif, Dialect::Tiff] {
            for min_size in [2u8, 3, 4, 7, 8] {
                let symbols = 1u32 << min_size;
                for runs in [false, true] {
                    // Long enough to fill the table several times over.
                    let data = data(300_000, symbols, runs);
                    let stream = encode(dialect, min_size, &data);
                    let out = decoder
                        .decode(dialect, min_size, &stream, data.len())
                        .unwrap();
                    assert!(out == data, "{dialect:?} {min_size} runs: {runs}");
                }
            }
        }
    }

    #[test]
    fn the_code_being_defined_repeats_the_previous_string() {
        // "aaaa...": every code after the first is the one being defined (KwKwK).
        let data = vec![7u8; 5000];
        let mut decoder = Decoder::default();
        for dialect in [Dialect::Gif, Dialect::Tiff] {
            let stream = encode(dialect, 8, &data);
            assert_eq!(decoder.decode(dialect, 8, &stream, 5000).unwrap(), data);
        }
    }

    #[test]
    fn stops_at_the_limit_and_at_the_end_of_the_input() {
        let data = data(50_000, 256, true);
        let stream = encode(Dialect::Gif, 8, &data);
        let mut decoder = Decoder::default();
        for max in [0, 1, 15, 16, 17, 1000, 49_999] {
            let out = decoder.decode(Dialect::Gif, 8, &stream, max).unwrap();
            assert_eq!(out, &data[..max]);
        }
        // More room than data: the end code stops it.
        let out = decoder.decode(Dialect::Gif, 8, &stream, 60_000).unwrap();
        assert_eq!(out, data);
        // A cut stream gives a prefix of the data.
        let out = decoder
            .decode(Dialect::Gif, 8, &stream[..stream.len() / 2], 60_000)
            .unwrap()
            .to_vec();
        assert!(!out.is_empty() && out.len() < data.len());
        assert_eq!(out, &data[..out.len()]);
    }

    #[test]
    fn codes_past_the_table_are_errors_and_noise_never_panics() {
        let mut decoder = Decoder::default();
        // Clear (256), then 300: nothing is defined past 257 yet.
        let stream = [0x00, 0x59, 0x02];
        assert_eq!(
            decoder.decode(Dialect::Gif, 8, &stream, 100),
            Err(LzwError::InvalidCode)
        );
        assert_eq!(
            decoder.decode(Dialect::Gif, 9, &stream, 100),
            Err(LzwError::CodeSize(9))
        );
        for seed in 0..300 {
            let noise = data(2000 + seed * 7, 256, seed % 2 == 0);
            for dialect in [Dialect::Gif, Dialect::Tiff] {
                let min_size = 2 + (seed % 7) as u8;
                if let Ok(out) = decoder.decode(dialect, min_size, &noise, 4096) {
                    assert!(out.len() <= 4096);
                }
            }
        }
    }
}
