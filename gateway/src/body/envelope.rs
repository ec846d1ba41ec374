//! The JSON envelope of an upload, parsed as it streams in.
//!
//! `{"data": "<base64>", "media_type": "image/png", "name": "cat.png"}`: the `data` string is
//! fed to a [`Base64Stream`] as its bytes arrive, so an envelope costs what a raw base64 body
//! costs, one buffer of decoded bytes, instead of the JSON text, a copy of the string and the
//! decoded bytes at once. The other members are small: each is collected (at most
//! [`MAX_OTHER_BYTES`] in all) and parsed by `serde_json`. Unknown members are checked for
//! well-formedness and ignored, as a serde struct would.
//!
//! The parser accepts exactly the JSON texts whose top level is an object; escapes inside
//! `data` are honoured (`\/`, `\n`, `\u0041`, ...). Error messages name the member at fault,
//! never the bytes the client sent.

use super::base64::Base64Stream;
use crate::error::ApiError;

/// The most bytes the members other than `data` may take, their names included.
pub const MAX_OTHER_BYTES: usize = 64 * 1024;

/// What an envelope brings: the image, or where to fetch it.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// `data` and `media_type`.
    Data {
        /// The decoded image.
        data: Vec<u8>,
        /// Its declared media type.
        media_type: String,
    },
    /// `url`: a source for a worker to fetch.
    Url(String),
}

/// A parsed envelope.
#[derive(Debug)]
pub struct Envelope {
    /// The image or its URL.
    pub source: Source,
    /// The client's file name.
    pub name: Option<String>,
    /// The upload parameters given as members ([`OPTIONS`]), as text.
    pub options: Vec<(&'static str, String)>,
}

/// The members that carry upload parameters, as the query parameters of the same names.
/// Each is a string, a number or a boolean (read as their JSON text), `null` (absent), or,
/// for `sizes`, also an array of strings.
pub const OPTIONS: [&str; 12] = [
    "sizes",
    "fit",
    "format",
    "quality",
    "enlarge",
    "lossless",
    "gravity",
    "focus",
    "color",
    "animated",
    "callback_url",
    "notify_email",
];

/// Where the parser is in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening brace.
    Start,
    /// After `{` (`first`) or after a `,`: a member name, or `}` when `first`.
    Name { first: bool },
    /// Inside a member name.
    InName { escaped: bool },
    /// After a member name.
    Colon,
    /// Before a member's value.
    Value,
    /// Inside the `data` string.
    Data(Escape),
    /// Inside another member's value.
    Other {
        in_string: bool,
        escaped: bool,
        depth: u32,
    },
    /// After a value: `,` or `}`.
    AfterValue,
    /// After the closing brace.
    End,
}

/// An escape sequence in progress inside `data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// `\u` and the hex digits read so far (`count` of 4).
    Unicode {
        count: u8,
        value: u16,
    },
}

/// Which member a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Data,
    MediaType,
    Name,
    Url,
    /// One of [`OPTIONS`].
    Option(&'static str),
    Unknown,
}

/// The envelope parser: feed it the body's chunks, then [`EnvelopeParser::finish`].
#[derive(Debug)]
pub struct EnvelopeParser {
    state: State,
    data: Base64Stream,
    data_seen: bool,
    /// The current member name (raw JSON string contents), or the current value's text.
    text: Vec<u8>,
    member: Member,
    /// Bytes of names and values other than `data` so far.
    other_bytes: usize,
    media_type: Option<String>,
    url: Option<String>,
    name: Option<Option<String>>,
    options: Vec<(&'static str, Option<String>)>,
}

fn invalid(message: &str) -> ApiError {
    ApiError::InvalidJson(message.to_owned())
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

impl EnvelopeParser {
    /// A parser whose `data` may decode to at most `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            state: State::Start,
            data: Base64Stream::new(limit),
            data_seen: false,
            text: Vec::new(),
            member: Member::Unknown,
            other_bytes: 0,
            media_type: None,
            url: None,
            name: None,
            options: Vec::new(),
        }
    }

    /// The buffer capacity the next `encoded` bytes may need (see [`Base64Stream`]).
    pub fn capacity_for(&self, encoded: usize) -> usize {
        self.data.capacity_for(encoded)
    }

    /// Grows the decoded-data buffer to `capacity` bytes.
    pub fn reserve(&mut self, capacity: usize) {
        self.data.reserve(capacity);
    }

    /// Feeds the next chunk of the body.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), ApiError> {
        while let Some((&byte, rest)) = chunk.split_first() {
            if let State::Data(Escape::None) = self.state {
                // The bulk of the body: hand runs of plain characters to the decoder at once.
                let run = chunk
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                    .unwrap_or(chunk.len());
                if run > 0 {
                    self.data.push(&chunk[..run])?;
                    chunk = &chunk[run..];
                    continue;
                }
            }
            self.step(byte)?;
            chunk = rest;
        }
        Ok(())
    }

    /// Takes one byte.
    fn step(&mut self, byte: u8) -> Result<(), ApiError> {
        self.state = match self.state {
            State::Start if is_space(byte) => State::Start,
            State::Start if byte == b'{' => State::Name { first: true },
            State::Start => return Err(invalid("the body is not a JSON object")),
            State::Name { first } => match byte {
                _ if is_space(byte) => State::Name { first },
                b'"' => {
                    self.text.clear();
                    State::InName { escaped: false }
                }
                b'}' if first => State::End,
                _ => return Err(invalid("expected a member name in double quotes")),
            },
            State::InName { escaped } => {
                self.count_other(1)?;
                if byte == b'"' && !escaped {
                    self.member = self.member_named()?;
                    State::Colon
                } else {
                    self.text.push(byte);
                    State::InName {
                        escaped: !escaped && byte == b'\\',
                    }
                }
            }
            State::Colon if is_space(byte) => State::Colon,
            State::Colon if byte == b':' => State::Value,
            State::Colon => return Err(invalid("expected ':' after a member name")),
            State::Value if is_space(byte) => State::Value,
            State::Value if self.member == Member::Data => {
                if byte != b'"' {
                    return Err(invalid("`data` must be a string of base64"));
                }
                State::Data(Escape::None)
            }
            State::Value => {
                self.text.clear();
                return self.other(byte, false, false, 0);
            }
            State::Data(escape) => self.data_byte(escape, byte)?,
            State::Other {
                in_string,
                escaped,
                depth,
            } => return self.other(byte, in_string, escaped, depth),
            State::AfterValue if is_space(byte) => State::AfterValue,
            State::AfterValue if byte == b',' => State::Name { first: false },
            State::AfterValue if byte == b'}' => State::End,
            State::AfterValue => return Err(invalid("expected ',' or '}' after a value")),
            State::End if is_space(byte) => State::End,
            State::End => return Err(invalid("trailing characters after the JSON object")),
        };
        Ok(())
    }

    /// Counts `bytes` more of names and values other than `data` against their limit.
    fn count_other(&mut self, bytes: usize) -> Result<(), ApiError> {
        self.other_bytes += bytes;
        if self.other_bytes > MAX_OTHER_BYTES {
            return Err(invalid(&format!(
                "the members other than `data` take more than {MAX_OTHER_BYTES} bytes"
            )));
        }
        Ok(())
    }

    /// The member whose name was just read; `data` and the known members at most once.
    fn member_named(&mut self) -> Result<Member, ApiError> {
        let mut quoted = Vec::with_capacity(self.text.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.text);
        quoted.push(b'"');
        let name: String =
            serde_json::from_slice(&quoted).map_err(|_| invalid("a member name is malformed"))?;
        let (member, seen) = match name.as_str() {
            "data" => (Member::Data, self.data_seen),
            "media_type" => (Member::MediaType, self.media_type.is_some()),
            "name" => (Member::Name, self.name.is_some()),
            "url" => (Member::Url, self.url.is_some()),
            other => match OPTIONS.iter().find(|option| **option == other) {
                Some(option) => (
                    Member::Option(option),
                    self.options.iter().any(|(seen, _)| seen == option),
                ),
                None => (Member::Unknown, false),
            },
        };
        if seen {
            return Err(invalid(&format!("duplicate member `{name}`")));
        }
        if member == Member::Data {
            self.data_seen = true;
        }
        Ok(member)
    }

    /// Takes one byte of `data`'s string.
    fn data_byte(&mut self, escape: Escape, byte: u8) -> Result<State, ApiError> {
        let decoded = match (escape, byte) {
            (Escape::None, b'"') => return Ok(State::AfterValue),
            (Escape::None, b'\\') => return Ok(State::Data(Escape::Backslash)),
            (_, 0..0x20) => return Err(invalid("a control character inside a string")),
            (Escape::None, _) => byte,
            (Escape::Backslash, b'u') => {
                return Ok(State::Data(Escape::Unicode { count: 0, value: 0 }));
            }
            (Escape::Backslash, b'n' | b'r' | b't') => b'\n',
            (Escape::Backslash, b'/' | b'\\' | b'"') => byte,
            (Escape::Backslash, b'b' | b'f') => 0x08,
            (Escape::Backslash, _) => return Err(invalid("an invalid escape inside `data`")),
            (Escape::Unicode { count, value }, _) => {
                let digit = char::from(byte)
                    .to_digit(16)
                    .ok_or_else(|| invalid("an invalid \\u escape inside `data`"))?;
                let value = value << 4 | digit as u16;
                if count < 3 {
                    return Ok(State::Data(Escape::Unicode {
                        count: count + 1,
                        value,
                    }));
                }
                u8::try_from(value)
                    .ok()
                    .filter(u8::is_ascii)
                    .ok_or_else(|| {
                        ApiError::InvalidBase64("a character outside ASCII".to_owned())
                    })?
            }
        };
        self.data.push(&[decoded])?;
        Ok(State::Data(Escape::None))
    }

    /// Takes one byte of another member's value; at its end, parses it.
    fn other(
        &mut self,
        byte: u8,
        mut in_string: bool,
        mut escaped: bool,
        mut depth: u32,
    ) -> Result<(), ApiError> {
        let mut ends = false;
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else {
            match byte {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b'}' | b',' if depth == 0 => ends = true,
                _ => {}
            }
        }
        if !ends {
            self.count_other(1)?;
            self.text.push(byte);
            self.state = State::Other {
                in_string,
                escaped,
                depth,
            };
            return Ok(());
        }
        self.take_value()?;
        self.state = State::AfterValue;
        self.step(byte)
    }

    /// Parses the value just read for the current member.
    fn take_value(&mut self) -> Result<(), ApiError> {
        let text = std::mem::take(&mut self.text);
        match self.member {
            Member::MediaType => {
                let value: String = serde_json::from_slice(&text)
                    .map_err(|_| invalid("`media_type` must be a string"))?;
                self.media_type = Some(value);
            }
            Member::Url => {
                let value: String =
                    serde_json::from_slice(&text).map_err(|_| invalid("`url` must be a string"))?;
                self.url = Some(value);
            }
            Member::Name => {
                let value: Option<String> = serde_json::from_slice(&text)
                    .map_err(|_| invalid("`name` must be a string or null"))?;
                self.name = Some(value);
            }
            Member::Option(option) => {
                let value: serde_json::Value = serde_json::from_slice(&text)
                    .map_err(|_| invalid("a member's value is malformed"))?;
                let text = match value {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(text) => Some(text),
                    serde_json::Value::Number(number) => Some(number.to_string()),
                    serde_json::Value::Bool(flag) => Some(flag.to_string()),
                    serde_json::Value::Array(items) if option == "sizes" => Some(
                        items
                            .into_iter()
                            .map(|item| match item {
                                serde_json::Value::String(text) => Ok(text),
                                _ => Err(invalid("`sizes` must be a string or strings")),
                            })
                            .collect::<Result<Vec<_>, _>>()?
                            .join(","),
                    ),
                    _ => {
                        return Err(invalid(&format!(
                            "`{option}` must be a string, a number or a boolean"
                        )));
                    }
                };
                self.options.push((option, text));
            }
            Member::Unknown => {
                serde_json::from_slice::<serde_json::Value>(&text)
                    .map_err(|_| invalid("a member's value is malformed"))?;
            }
            Member::Data => unreachable!("data is parsed as it streams"),
        }
        Ok(())
    }

    /// Checks that the object is complete and returns it.
    pub fn finish(self) -> Result<Envelope, ApiError> {
        match self.state {
            State::End => {}
            State::Start => return Err(ApiError::EmptyBody),
            _ => return Err(invalid("the JSON body ends before its object does")),
        }
        let source = match (self.data_seen, self.url) {
            (true, Some(_)) => return Err(invalid("give `data` or `url`, not both")),
            (false, None) => return Err(invalid("missing member `data` (or `url`)")),
            (false, Some(url)) => Source::Url(url),
            (true, None) => Source::Data {
                media_type: self
                    .media_type
                    .ok_or_else(|| invalid("missing member `media_type`"))?,
                data: self.data.finish()?,
            },
        };
        Ok(Envelope {
            source,
            name: self.name.flatten(),
            options: self
                .options
                .into_iter()
                .filter_map(|(option, text)| Some((option, text?)))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use ::base64::Engine;
    use ::base64::engine::general_purpose::STANDARD;

    use super::*;

    fn parse_in_chunks(text: &[u8], chunk: usize) -> Result<Envelope, ApiError> {
        let mut parser = EnvelopeParser::new(1 << 20);
        for piece in text.chunks(chunk) {
            parser.push(piece)?;
        }
        parser.finish()
    }

    #[test]
    fn parses_in_any_chunking() {
        let data: Vec<u8> = (0..=255).collect();
        let encoded = STANDARD.encode(&data);
        let text = format!(
            r#" {{ "media_type" : "image/png", "extra": {{"a": [1, "}}", {{}}]}}, "data": "{encoded}", "name": "caf\u00e9.png" }} "#
        );
        for chunk in [1, 2, 3, 7, 64, text.len()] {
            let envelope = parse_in_chunks(text.as_bytes(), chunk).unwrap();
            let Source::Data {
                data: decoded,
                media_type,
            } = envelope.source
            else {
                panic!("not data");
            };
            assert_eq!(decoded, data);
            assert_eq!(media_type, "image/png");
            assert_eq!(envelope.name.as_deref(), Some("café.png"));
            assert!(envelope.options.is_empty());
        }
    }

    #[test]
    fn upload_parameters_come_as_members() {
        let text = r#"{"data": "aGk=", "media_type": "image/png", "sizes": ["100x100", "card"],
            "fit": "cover", "quality": 70, "enlarge": true, "format": null,
            "callback_url": "https://hooks.example.org/t"}"#;
        let envelope = parse_in_chunks(text.as_bytes(), 7).unwrap();
        assert_eq!(
            envelope.options,
            [
                ("sizes", "100x100,card".to_owned()),
                ("fit", "cover".to_owned()),
                ("quality", "70".to_owned()),
                ("enlarge", "true".to_owned()),
                ("callback_url", "https://hooks.example.org/t".to_owned()),
            ]
        );
        for bad in [
            r#"{"data": "aGk=", "media_type": "x", "fit": {"a": 1}}"#,
            r#"{"data": "aGk=", "media_type": "x", "quality": [1]}"#,
            r#"{"data": "aGk=", "media_type": "x", "sizes": [1]}"#,
            r#"{"data": "aGk=", "media_type": "x", "fit": "a", "fit": "b"}"#,
        ] {
            assert!(parse_in_chunks(bad.as_bytes(), 3).is_err(), "{bad}");
        }
    }

    #[test]
    fn escapes_inside_data_are_honoured() {
        assert_eq!(STANDARD.encode(b"hello?>>"), "aGVsbG8/Pj4=");
        let escaped = r#"\u0061GVs\nbG8\/Pj4="#;
        let text = format!(r#"{{"data": "{escaped}", "media_type": "image/png", "name": null}}"#);
        let envelope = parse_in_chunks(text.as_bytes(), 3).unwrap();
        assert!(matches!(envelope.source, Source::Data { data, .. } if data == b"hello?>>"));
        assert_eq!(envelope.name, None);
    }

    #[test]
    fn a_url_stands_for_the_data() {
        let text = r#"{"url": "https://example.org/a.jpg", "name": "a", "sizes": ["64x64"]}"#;
        let envelope = parse_in_chunks(text.as_bytes(), 5).unwrap();
        assert!(matches!(&envelope.source, Source::Url(url) if url == "https://example.org/a.jpg"));
        assert_eq!(envelope.options, [("sizes", "64x64".to_owned())]);
        for (text, expected) in [
            (r#"{"url": "x", "data": "aGk="}"#, "not both"),
            (r#"{"url": 5}"#, "`url` must be a string"),
            (r#"{"name": "a"}"#, "missing member `data` (or `url`)"),
        ] {
            let message = parse_in_chunks(text.as_bytes(), 4).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn agrees_with_serde_json_on_what_is_json() {
        for text in [
            r#"{"data": "aGk=", "media_type": "image/png"}"#,
            r#"{"data": "aGk=", "media_type": "image/png", }"#,
            r#"{"data": "aGk=" "media_type": "image/png"}"#,
            r#"{"data": "aGk=", "media_type": "image/png"} x"#,
            r#"{"data": "aGk=", "media_type": "image/png", "x": tru}"#,
            r#"{"data": "aGk=", "media_type": "image/png", "x": [1,}"#,
            r#"{"data": "aGk=", "media_type": "image/png", "x": 01}"#,
            r#"{"data": "aGk=", "media_type": "image/png""#,
            "{\"data\": \"aG\nk=\", \"media_type\": \"image/png\"}",
        ] {
            let ours = parse_in_chunks(text.as_bytes(), 5).is_ok();
            let theirs = serde_json::from_str::<serde_json::Value>(text).is_ok();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn refusals_name_the_member_never_the_input() {
        for (text, expected) in [
            (r#"{"media_type": "image/png"}"#, "missing member `data`"),
            (r#"{"data": "aGk="}"#, "missing member `media_type`"),
            (
                r#"{"data": 5, "media_type": "x"}"#,
                "`data` must be a string",
            ),
            (
                r#"{"data": "aGk=", "media_type": 5}"#,
                "`media_type` must be a string",
            ),
            (
                r#"{"data": "aGk=", "data": "aGk="}"#,
                "duplicate member `data`",
            ),
            (
                r#"{"data": "aGk=", "media_type": "x", "name": ["SECRET"]}"#,
                "`name` must be",
            ),
        ] {
            let error = parse_in_chunks(text.as_bytes(), 4).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(!message.contains("SECRET"));
        }
        let deep = format!(
            r#"{{"data": "aGk=", "media_type": "x", "deep": {}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(matches!(
            parse_in_chunks(deep.as_bytes(), 100),
            Err(ApiError::InvalidJson(_))
        ));
        let big = format!(
            r#"{{"data": "aGk=", "media_type": "x", "big": "{}"}}"#,
            "x".repeat(MAX_OTHER_BYTES)
        );
        assert!(matches!(
            parse_in_chunks(big.as_bytes(), 4096),
            Err(ApiError::InvalidJson(_))
        ));
    }

    #[test]
    fn data_is_held_to_the_decoded_limit() {
        let encoded = STANDARD.encode([7u8; 100]);
        let text = format!(r#"{{"data": "{encoded}", "media_type": "image/png"}}"#);
        let mut parser = EnvelopeParser::new(99);
        let outcome = parser.push(text.as_bytes()).and_then(|()| parser.finish());
        assert!(matches!(
            outcome,
            Err(ApiError::PayloadTooLarge { limit: 99 })
        ));
        // Only JSON objects are envelopes.
        assert!(matches!(
            parse_in_chunks(br#"["data"]"#, 3),
            Err(ApiError::InvalidJson(_))
        ));
    }
}
