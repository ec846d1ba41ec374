//! The renderer's side: this program started with [`super::CHILD_FLAG`], a [`Request`] and a
//! file's path, which draws the document and writes a [`Reply`] line and the pixels to its
//! standard output, then exits. It reads that one file and writes only to its output; the
//! parent bounds its time, memory and output.

use std::ffi::OsString;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use common::media::MediaType;

use super::{CHILD_FLAG, Rendered, Reply, Request, pdf, svg};
use crate::error::ThumbnailError;

/// When this process was started as a renderer (its first argument is [`CHILD_FLAG`]),
/// renders and gives the exit code; otherwise `None`, and the program goes on as itself.
pub fn serve_if_asked() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != CHILD_FLAG {
        return None;
    }
    let (Some(request), Some(path), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: {CHILD_FLAG} REQUEST FILE");
        return Some(ExitCode::from(2));
    };
    Some(serve(request, path))
}

/// Renders the file at `path` as `request` (JSON) says, and writes the answer.
fn serve(request: OsString, path: OsString) -> ExitCode {
    let Some(request) = request
        .to_str()
        .and_then(|request| serde_json::from_str::<Request>(request).ok())
    else {
        eprintln!("the request is not valid");
        return ExitCode::from(2);
    };
    let reply = match rendered(&request, &path) {
        Ok(rendered) => {
            let header = Reply {
                source_width: rendered.width,
                source_height: rendered.height,
                width: rendered.image.width(),
                height: rendered.image.height(),
                error: None,
            };
            write(&header, rendered.image.as_raw())
        }
        Err(error) => {
            let header = Reply {
                source_width: 0,
                source_height: 0,
                width: 0,
                height: 0,
                error: Some((error.code(), error.to_string())),
            };
            write(&header, &[])
        }
    };
    match reply {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cannot write the answer: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the file (no more than the document limit) and draws it, a panic contained.
fn rendered(request: &Request, path: &OsString) -> Result<Rendered, ThumbnailError> {
    let media_type = request.media_type;
    let unreadable = |detail: String| ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail,
    };
    if !media_type.is_document() {
        return Err(unreadable("not a document this renderer draws".to_owned()));
    }
    let max = request.limits.max_bytes(media_type);
    let bytes = std::fs::read(path)
        .map_err(|error| unreadable(format!("cannot read it: {}", error.kind())))?;
    if bytes.len() as u64 > max {
        return Err(ThumbnailError::DocumentTooLarge {
            media_type: media_type.as_str(),
            detail: format!(
                "it is {} bytes, over limits.max_document_bytes ({max})",
                bytes.len()
            ),
        });
    }
    let (variants, limits, documents) = (&request.variants, &request.limits, &request.documents);
    catch_unwind(AssertUnwindSafe(|| match media_type {
        MediaType::Pdf => pdf::render(bytes, variants, limits, documents),
        _ => svg::render(&bytes, variants, limits, documents),
    }))
    .unwrap_or_else(|_| {
        Err(ThumbnailError::Panic(format!(
            "the {media_type} renderer panicked"
        )))
    })
}

/// Writes the header line and the pixels to standard output.
fn write(header: &Reply, pixels: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, header)?;
    out.write_all(b"\n")?;
    out.write_all(pixels)?;
    out.flush()
}
