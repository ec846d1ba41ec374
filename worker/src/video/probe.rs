//! What `ffprobe` says about a video: its length and its first picture stream, with the
//! display rotation. Nothing is decoded beyond what FFmpeg needs to read the stream headers.

use serde::Deserialize;

/// A video's facts, from its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Length in seconds, when the file says.
    pub duration: Option<f64>,
    /// The codec, as FFmpeg names it.
    pub codec: String,
    /// Frames per second, when the stream says.
    pub fps: Option<f64>,
    /// Frame width as stored.
    pub width: u32,
    /// Frame height as stored.
    pub height: u32,
    /// Display rotation, degrees clockwise: 0, 90, 180 or 270.
    pub rotation: u16,
}

impl Probe {
    /// The frame's size once turned upright.
    pub fn upright(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// `ffprobe -of json` output, the parts read.
#[derive(Debug, Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    #[serde(default)]
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
struct Format {
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Tags {
    rotate: Option<String>,
}

/// The arguments that make `ffprobe` describe the first video stream of `input` (an
/// FFmpeg input URL), read with the `demuxer` format.
pub fn args(demuxer: &str, input: &str) -> Vec<String> {
    [
        "-v",
        "error",
        "-protocol_whitelist",
        "file",
        "-f",
        demuxer,
        "-select_streams",
        "v:0",
        "-show_entries",
        "format=duration:stream=codec_name,width,height,avg_frame_rate,r_frame_rate,duration:stream_side_data=rotation:stream_tags=rotate",
        "-of",
        "json",
        "-i",
        input,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Why a probe's output describes no usable video.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// There is no picture: audio only, or no stream at all.
    #[error("the file has no video stream (audio only, or no stream at all)")]
    NoVideo,
    /// The picture stream declares no size.
    #[error("the video stream declares no frame size")]
    NoSize,
    /// ffprobe's output is not what it writes.
    #[error("ffprobe's output cannot be read: {0}")]
    Unreadable(String),
}

/// Reads `ffprobe`'s JSON output.
pub fn parse(json: &[u8]) -> Result<Probe, ProbeError> {
    let output: Output =
        serde_json::from_slice(json).map_err(|error| ProbeError::Unreadable(error.to_string()))?;
    let stream = output
        .streams
        .into_iter()
        .next()
        .ok_or(ProbeError::NoVideo)?;
    let (width, height) = match (stream.width, stream.height) {
        (Some(width), Some(height)) if width > 0 && height > 0 => (width, height),
        _ => return Err(ProbeError::NoSize),
    };
    let seconds = |value: Option<String>| {
        value
            .and_then(|value| value.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
    };
    let duration = seconds(output.format.and_then(|format| format.duration))
        .or_else(|| seconds(stream.duration));
    let fps =
        rate(stream.avg_frame_rate.as_deref()).or_else(|| rate(stream.r_frame_rate.as_deref()));
    // The display matrix gives the angle counter-clockwise; the old `rotate` tag clockwise.
    let counter_clockwise = stream
        .side_data_list
        .iter()
        .find_map(|side| side.rotation)
        .or_else(|| {
            stream
                .tags
                .rotate
                .and_then(|rotate| rotate.parse::<f64>().ok())
                .map(|clockwise| -clockwise)
        })
        .unwrap_or(0.0);
    let quarter_turns = (-counter_clockwise / 90.0).round() as i64;
    let rotation = (quarter_turns.rem_euclid(4) * 90) as u16;
    Ok(Probe {
        duration,
        codec: stream.codec_name.unwrap_or_else(|| "unknown".to_owned()),
        fps,
        width,
        height,
        rotation,
    })
}

/// A frame rate written as `num/den`; `None` for `0/0` and nonsense.
fn rate(value: Option<&str>) -> Option<f64> {
    let (num, den) = value?.split_once('/')?;
    let (num, den) = (num.parse::<f64>().ok()?, den.parse::<f64>().ok()?);
    let fps = num / den;
    (fps.is_finite() && fps > 0.0).then(|| (fps * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stream_with_a_display_matrix() {
        let json = br#"{"programs": [], "streams": [{"codec_name": "h264", "width": 320,
            "height": 240, "avg_frame_rate": "30000/1001", "r_frame_rate": "30/1",
            "side_data_list": [{"rotation": -90}]}], "format": {"duration": "3.000000"}}"#;
        let probe = parse(json).unwrap();
        assert_eq!(
            probe,
            Probe {
                duration: Some(3.0),
                codec: "h264".to_owned(),
                fps: Some(29.97),
                width: 320,
                height: 240,
                rotation: 90,
            }
        );
        assert_eq!(probe.upright(), (240, 320));
    }

    #[test]
    fn reads_the_old_rotate_tag_and_missing_facts() {
        let json = br#"{"streams": [{"codec_name": "vp9", "width": 64, "height": 48,
            "avg_frame_rate": "0/0", "tags": {"rotate": "180"}}], "format": {}}"#;
        let probe = parse(json).unwrap();
        assert_eq!(
            (probe.duration, probe.fps, probe.rotation),
            (None, None, 180)
        );
        assert_eq!(probe.upright(), (64, 48));
    }

    #[test]
    fn no_stream_or_no_size_is_no_video() {
        assert_eq!(
            parse(br#"{"streams": [], "format": {"duration": "2.0"}}"#),
            Err(ProbeError::NoVideo)
        );
        assert_eq!(
            parse(br#"{"streams": [{"codec_name": "h264", "width": 0, "height": 0}]}"#),
            Err(ProbeError::NoSize)
        );
        assert!(matches!(parse(b"not json"), Err(ProbeError::Unreadable(_))));
    }
}
