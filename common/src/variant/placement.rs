//! Where a variant's picture sits in its box: the [`Fit`], and for `cover` the part of the
//! image kept ([`Gravity`], [`FocalPoint`]).
//!
//! Gravity names follow libvips's (`centre`, the compass points `north` … `north-west`,
//! `attention`, `entropy`); `focus` keeps a given point, given as fractions of the upright
//! image (`focus=0.3,0.6`), as near the crop's centre as the image allows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How an image meets its box.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Inside the box, aspect ratio kept.
    #[default]
    Contain,
    /// Fills the box, aspect ratio kept; what overflows is cropped away, the part kept
    /// chosen by the variant's [`Gravity`].
    Cover,
    /// Stretched to the box.
    Fill,
}

impl Fit {
    /// The parameter's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Contain => "contain",
            Fit::Cover => "cover",
            Fit::Fill => "fill",
        }
    }
}

impl FromStr for Fit {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "contain" => Ok(Fit::Contain),
            "cover" => Ok(Fit::Cover),
            "fill" => Ok(Fit::Fill),
            _ => Err(()),
        }
    }
}

/// Which part of the image a `cover` crop keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Gravity {
    /// The centre.
    #[default]
    Centre,
    /// The top edge's middle.
    North,
    /// The top right corner.
    NorthEast,
    /// The right edge's middle.
    East,
    /// The bottom right corner.
    SouthEast,
    /// The bottom edge's middle.
    South,
    /// The bottom left corner.
    SouthWest,
    /// The left edge's middle.
    West,
    /// The top left corner.
    NorthWest,
    /// The region that draws the eye: edges, skin tones and saturated colour (as libvips's
    /// `attention`).
    Attention,
    /// The region with the most detail (the highest entropy of its luminance histogram).
    Entropy,
    /// The variant's focal point (`focus`).
    Focus,
}

/// Every gravity, in the order the error message lists them.
pub const GRAVITIES: [Gravity; 12] = [
    Gravity::Centre,
    Gravity::North,
    Gravity::NorthEast,
    Gravity::East,
    Gravity::SouthEast,
    Gravity::South,
    Gravity::SouthWest,
    Gravity::West,
    Gravity::NorthWest,
    Gravity::Attention,
    Gravity::Entropy,
    Gravity::Focus,
];

impl Gravity {
    /// The parameter's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Gravity::Centre => "centre",
            Gravity::North => "north",
            Gravity::NorthEast => "north-east",
            Gravity::East => "east",
            Gravity::SouthEast => "south-east",
            Gravity::South => "south",
            Gravity::SouthWest => "south-west",
            Gravity::West => "west",
            Gravity::NorthWest => "north-west",
            Gravity::Attention => "attention",
            Gravity::Entropy => "entropy",
            Gravity::Focus => "focus",
        }
    }

    /// For a compass gravity (or the centre), where the crop sits in the room it has: 0 at
    /// the left (top), 0.5 in the middle, 1 at the right (bottom). None for the others.
    pub fn anchor(self) -> Option<(f64, f64)> {
        Some(match self {
            Gravity::Centre => (0.5, 0.5),
            Gravity::North => (0.5, 0.0),
            Gravity::NorthEast => (1.0, 0.0),
            Gravity::East => (1.0, 0.5),
            Gravity::SouthEast => (1.0, 1.0),
            Gravity::South => (0.5, 1.0),
            Gravity::SouthWest => (0.0, 1.0),
            Gravity::West => (0.0, 0.5),
            Gravity::NorthWest => (0.0, 0.0),
            Gravity::Attention | Gravity::Entropy | Gravity::Focus => return None,
        })
    }
}

impl FromStr for Gravity {
    type Err = ();

    /// The libvips names; `center` and underscores are taken too.
    fn from_str(text: &str) -> Result<Self, ()> {
        let text = text.replace('_', "-");
        if text == "center" {
            return Ok(Gravity::Centre);
        }
        GRAVITIES
            .into_iter()
            .find(|gravity| gravity.as_str() == text)
            .ok_or(())
    }
}

/// A point of the upright image, as fractions of its width and height (0 to 1), kept in
/// ten-thousandths so that variants compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FocalPoint {
    /// Across, in ten-thousandths of the width.
    pub x: u16,
    /// Down, in ten-thousandths of the height.
    pub y: u16,
}

impl FocalPoint {
    /// The point as fractions (0 to 1).
    pub fn fractions(self) -> (f64, f64) {
        (f64::from(self.x) / 10_000.0, f64::from(self.y) / 10_000.0)
    }
}

/// In the OpenAPI document: a string, `x,y` as fractions.
impl utoipa::PartialSchema for FocalPoint {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^(0(\.[0-9]+)?|1(\.0+)?),(0(\.[0-9]+)?|1(\.0+)?)$"))
            .examples(["0.5,0.3", "0.25,0.75"])
            .into()
    }
}

impl utoipa::ToSchema for FocalPoint {}

impl fmt::Display for FocalPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, y) = self.fractions();
        write!(f, "{x},{y}")
    }
}

impl From<FocalPoint> for String {
    fn from(point: FocalPoint) -> String {
        point.to_string()
    }
}

impl TryFrom<String> for FocalPoint {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl FromStr for FocalPoint {
    type Err = String;

    /// `x,y`: two decimal fractions from 0 to 1, each `0`, `1`, or `0.` or `1.` and digits
    /// (at most ten; four places count).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || "a focal point is x,y as fractions from 0 to 1, such as 0.5,0.3".to_owned();
        let (x, y) = text.split_once(',').ok_or_else(bad)?;
        let fraction = |text: &str| -> Result<u16, String> {
            let (whole, places) = text.split_once('.').unwrap_or((text, "0"));
            let digits = !places.is_empty()
                && places.len() <= 10
                && places.bytes().all(|b| b.is_ascii_digit());
            let value = match whole {
                "0" if digits => format!("0.{places}").parse::<f64>().map_err(|_| bad())?,
                "1" if digits && places.bytes().all(|b| b == b'0') => 1.0,
                _ => return Err(bad()),
            };
            Ok((value * 10_000.0).round() as u16)
        };
        Ok(FocalPoint {
            x: fraction(x)?,
            y: fraction(y)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gravities_parse_as_they_print() {
        for gravity in GRAVITIES {
            assert_eq!(gravity.as_str().parse(), Ok(gravity));
            let json = serde_json::to_string(&gravity).unwrap();
            assert_eq!(json, format!("\"{}\"", gravity.as_str()));
        }
        assert_eq!("center".parse(), Ok(Gravity::Centre));
        assert_eq!("north_east".parse(), Ok(Gravity::NorthEast));
        assert_eq!("middle".parse::<Gravity>(), Err(()));
    }

    #[test]
    fn focal_points_are_fractions_of_the_image() {
        let point: FocalPoint = "0.25,1".parse().unwrap();
        assert_eq!((point.x, point.y), (2500, 10000));
        assert_eq!(point.to_string(), "0.25,1");
        for bad in [
            "",
            "0.5",
            "1.5,0",
            "-0.1,0",
            "a,b",
            "0.5,0.5,0.5",
            "nan,0",
            "1e-3,0",
        ] {
            assert!(bad.parse::<FocalPoint>().is_err(), "{bad}");
        }
    }
}
