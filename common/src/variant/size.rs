//! A variant's box: `W x H`, either side open.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A box: `W x H`, either side open (`320x` is 320 wide, any height).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Size {
    /// The box's width, if bounded.
    pub width: Option<u32>,
    /// The box's height, if bounded.
    pub height: Option<u32>,
}

/// In the OpenAPI document: a string, `W x H` with either side left out.
impl utoipa::PartialSchema for Size {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9]*x[0-9]*$"))
            .examples(["400x300", "320x", "x240"])
            .into()
    }
}

impl utoipa::ToSchema for Size {}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |side: Option<u32>| side.map(|s| s.to_string()).unwrap_or_default();
        write!(f, "{}x{}", side(self.width), side(self.height))
    }
}

impl From<Size> for String {
    fn from(size: Size) -> String {
        size.to_string()
    }
}

impl TryFrom<String> for Size {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl FromStr for Size {
    type Err = String;

    /// `W x H` in decimal digits, either side empty but not both; no sign, no spaces.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || "a size is W x H in pixels, such as 400x300 or 320x".to_owned();
        let (width, height) = text.split_once(['x', 'X']).ok_or_else(bad)?;
        let side = |text: &str| -> Result<Option<u32>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            if text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match text.parse::<u32>() {
                Ok(0) => Err("a side of a size must be at least 1 pixel".to_owned()),
                Ok(side) => Ok(Some(side)),
                Err(_) => Err(bad()),
            }
        };
        let size = Size {
            width: side(width)?,
            height: side(height)?,
        };
        if size.width.is_none() && size.height.is_none() {
            return Err(bad());
        }
        Ok(size)
    }
}
