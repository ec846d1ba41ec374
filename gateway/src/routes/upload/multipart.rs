//! `POST /images` with `multipart/form-data`: one upload per file, many files per request,
//! each streamed to disk as it arrives.
//!
//! - Every part with a filename is a file, whatever its field name (`image`, `images`,
//!   `file`, `files`...). Its media type is the part's `Content-Type`, or, when that is
//!   absent or `application/octet-stream`, what its magic bytes say; either way the bytes are
//!   sniffed and the header checked as for a base64 upload ([`crate::ingest::examine`]).
//! - Text fields (`name`, `sizes`, `fit`, `format`, `quality`, `enlarge`, `lossless`,
//!   `gravity`, `focus`, `color`, `callback_url`, `notify_email`) apply to every file of the form and override the query, wherever they
//!   come: before the files, between them or after them (a field given twice counts with its
//!   last value). Other fields are ignored.
//! - A file is written to the [`common::spool`] chunk by chunk, hashed on the way, and refused
//!   (413) as soon as it passes its limit: `limits.max_video_bytes` for a video,
//!   `max_upload_bytes` for an image (by the part's type, else its first bytes); the
//!   request's memory is a few chunks whatever the files' sizes (the files wait on disk).
//!   Files past `limits.max_files_per_request` are refused (413 `too_many_files`): they are
//!   read through and counted in one item, `{"part", "error", "refused"}` (the first such
//!   part and how many there were), so the answer grows with the accepted files, never with
//!   the form. A form is read up to
//!   `limits.max_form_parts` parts, files and fields together (413 `too_many_parts`, nothing
//!   after it is read), and the body is cut at `limits.max_request_bytes` (413
//!   `request_too_large` for the file being read; nothing after it is read). A text field
//!   longer than 64 KiB or not UTF-8 refuses the whole form (400), keeping none of it.
//! - Each file is checked as soon as it has arrived (magic bytes, size, header) and waits in
//!   the spool. Once the form has ended, at its closing boundary, the fields are checked
//!   and each file that passed is committed on its own, as a base64 upload is (raw object,
//!   record and job, flushed). A form that ends early (the connection breaks, a part is
//!   malformed, a limit cuts it) still commits each file that arrived whole, with the fields
//!   that arrived before the break; the file being read when it broke is dropped. The request
//!   runs on a task of its own, so a client that hangs up does not cancel its commits.
//!
//! The answer lists every file in part order, `{"items": [...]}`: the record of each accepted
//! file, `{"part", "filename", "error"}` for each refused one (`part` counts every part of the
//! form from 0). With at least one accepted it is 202, `Location` and `media_id` naming the
//! first accepted file (the same member as a single upload's answer); with none,
//! the status of the first refusal, with the first refusal as `error` beside the items.

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use common::media::{MediaType, SNIFF_BYTES};
use common::record::Record;
use multer::{Field, Multipart};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Raw, UploadParams, check_name, commit, count_refusal, unsupported};
use crate::body::{self, BodyTiming};
use crate::error::ApiError;
use crate::ingest::{Examined, examine};
use crate::state::AppState;
use common::spool::Spooled;

/// The longest text field read.
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// A part as the form is read: a file waiting for the form's end, or a refusal.
enum Item {
    Received(Box<Received>),
    Refused(Refusal),
}

/// What became of a part, as the answer lists it.
enum Listed {
    Accepted(Box<Record>),
    Refused(Refusal),
}

/// A refused part, or several of a kind (counted in `refused`).
struct Refusal {
    part: usize,
    filename: Option<String>,
    error: ApiError,
    /// How many parts this item stands for: the first of them is `part`.
    refused: usize,
}

impl Refusal {
    /// One refused part.
    fn new(part: usize, filename: Option<String>, error: ApiError) -> Self {
        Refusal {
            part,
            filename,
            error,
            refused: 1,
        }
    }
}

impl Item {
    /// One refused part.
    fn refused(part: usize, filename: Option<String>, error: ApiError) -> Self {
        Item::Refused(Refusal::new(part, filename, error))
    }
}

/// Adds a refusal that stands for every part of its kind: the first makes the item (its
/// place kept in `at`), the others only count in it.
fn count_into(items: &mut Vec<Item>, at: &mut Option<usize>, first: impl FnOnce() -> Item) {
    match *at {
        Some(index) => {
            if let Some(Item::Refused(refusal)) = items.get_mut(index) {
                refusal.refused += 1;
            }
        }
        None => {
            *at = Some(items.len());
            items.push(first());
        }
    }
}

/// A file that arrived whole and passed its checks: its record is made when the form ends.
struct Received {
    part: usize,
    filename: String,
    spooled: Spooled,
    examined: Examined,
}

/// The longest file or field name an answer repeats; the part's own headers may be longer.
const MAX_LISTED_NAME: usize = 256;

/// A part's file name as an answer lists it: at most [`MAX_LISTED_NAME`] bytes, cut at a
/// character boundary.
fn bounded_filename(name: &str) -> String {
    let mut end = name.len().min(MAX_LISTED_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// Reads a multipart form, checking each file as it completes, then commits the files that
/// passed with the form's fields.
pub(super) async fn accept(
    state: &AppState,
    mut params: UploadParams,
    boundary: String,
    content_length: Option<u64>,
    timing: BodyTiming,
    body: &mut Body,
) -> Result<Response, ApiError> {
    let limits = &state.config.limits;
    if content_length.is_some_and(|length| length > limits.max_request_bytes) {
        return Err(ApiError::RequestTooLarge {
            limit: limits.max_request_bytes,
        });
    }
    // The body is cut at the request limit before the parser sees it (body::chunks), so that
    // the refusal falls on the part being read.
    let chunks = body::chunks(body, timing, limits.max_request_bytes);
    let mut form = Multipart::new(chunks, boundary);
    let mut items = Vec::new();
    let mut files = 0;
    // The files past the limit are one item that counts them: the answer grows with the
    // accepted files, never with the form.
    let mut surplus: Option<usize> = None;
    for part in 0.. {
        if part == limits.max_form_parts {
            items.push(Item::refused(
                part,
                None,
                ApiError::TooManyParts {
                    max: limits.max_form_parts,
                },
            ));
            break;
        }
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) => {
                items.push(Item::refused(part, None, form_error(error)));
                break;
            }
        };
        let Some(filename) = field.file_name().map(bounded_filename) else {
            let name = field.name().unwrap_or_default().to_owned();
            match read_text(field).await {
                Ok(value) => {
                    if let Some(slot) = params.slot(&name) {
                        *slot = Some(value);
                    }
                }
                // The body broke off inside the field: the form ends here.
                Err((error, true)) => {
                    items.push(Item::refused(part, None, error));
                    break;
                }
                // A value too long, or not text: the form is refused, none of it kept.
                Err((error, false)) => return Err(error),
            }
            continue;
        };
        files += 1;
        if files > limits.max_files_per_request {
            // Read through (the next part drains it), counted, not kept.
            count_into(&mut items, &mut surplus, || {
                Item::refused(
                    part,
                    Some(filename),
                    ApiError::TooManyFiles {
                        max: limits.max_files_per_request,
                    },
                )
            });
            continue;
        }
        match receive(state, field).await {
            Ok((spooled, examined)) => items.push(Item::Received(Box::new(Received {
                part,
                filename,
                spooled,
                examined,
            }))),
            Err((error, fatal)) => {
                items.push(Item::refused(part, Some(filename), error));
                if fatal {
                    break;
                }
            }
        }
    }
    let items = commit_received(state, params, items).await?;
    Ok(answer(state, items))
}

/// Commits every file received, with the form's fields (checked once, for all of them): each
/// becomes accepted, or refused on its own.
async fn commit_received(
    state: &AppState,
    mut params: UploadParams,
    items: Vec<Item>,
) -> Result<Vec<Listed>, ApiError> {
    let mut committed = Vec::with_capacity(items.len());
    // The fields are checked once, and only when there is a file to apply them to.
    let mut request = None;
    for item in items {
        let received = match item {
            Item::Refused(refusal) => {
                committed.push(Listed::Refused(refusal));
                continue;
            }
            Item::Received(received) => received,
        };
        let request = match &request {
            Some(request) => request,
            None => request.insert(std::mem::take(&mut params).into_request(state)?),
        };
        let Received {
            part,
            filename,
            spooled,
            examined,
        } = *received;
        let mut request = request.clone();
        if request.name.is_none() {
            request.name = check_name(Some(filename.clone())).unwrap_or(None);
        }
        let record = examined.into_record(spooled.digests.clone(), request);
        committed.push(match commit(state, record, Raw::File(spooled.file)).await {
            Ok(record) => Listed::Accepted(Box::new(record)),
            Err(error) => Listed::Refused(Refusal::new(part, Some(filename), error)),
        });
    }
    Ok(committed)
}

/// Receives one file: spools it and checks it. The error says whether the form can still be
/// read after it.
async fn receive(
    state: &AppState,
    mut field: Field<'_>,
) -> Result<(Spooled, Examined), (ApiError, bool)> {
    let limits = &state.config.limits;
    let declared = match field.content_type().map(|mime| mime.essence_str()) {
        None | Some("application/octet-stream") => None,
        Some(essence) => Some(
            essence
                .parse::<MediaType>()
                .map_err(|_| (unsupported(state), false))?,
        ),
    };
    let io = |error: std::io::Error| (ApiError::Io(error), false);
    let mut file = state.spool.file().await.map_err(io)?;
    // The file's size limit depends on what it is: the declared type, else the first bytes.
    let mut limit = declared.map(|media_type| limits.max_bytes(media_type));
    let mut head = Vec::new();
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                if limit.is_none() {
                    head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
                    if head.len() == SNIFF_BYTES {
                        limit = Some(limits.max_bytes_of(&head));
                    }
                }
                let most = limit.unwrap_or(limits.max_upload_bytes.max(limits.max_video_bytes));
                if file.size() + chunk.len() as u64 > most {
                    return Err((ApiError::PayloadTooLarge { limit: most }, false));
                }
                file.write(&chunk).await.map_err(io)?;
            }
            Ok(None) => break,
            Err(error) => return Err((form_error(error), true)),
        }
    }
    let spooled = file.finish().await.map_err(io)?;
    if spooled.size == 0 {
        return Err((ApiError::EmptyFile, false));
    }
    let limits = limits.clone();
    tokio::task::spawn_blocking(move || {
        let map = spooled.map().map_err(ApiError::Io)?;
        let examined = examine(&map, declared, &limits)?;
        drop(map);
        Ok::<_, ApiError>((spooled, examined))
    })
    .await
    .map_err(|error| (ApiError::Io(std::io::Error::other(error)), false))?
    .map_err(|error| (error, false))
}

/// Reads a text field, bounded. The error says whether the body broke off (the form cannot
/// be read after it) rather than the value being bad.
async fn read_text(mut field: Field<'_>) -> Result<String, (ApiError, bool)> {
    let mut value = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|error| (form_error(error), true))?
    {
        if value.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err((
                ApiError::InvalidParameter(format!(
                    "a form field is longer than {MAX_FIELD_BYTES} bytes"
                )),
                false,
            ));
        }
        value.extend_from_slice(&chunk);
    }
    String::from_utf8(value).map_err(|_| {
        (
            ApiError::InvalidParameter("a form field is not UTF-8".to_owned()),
            false,
        )
    })
}

/// What a multipart parser error means to the client. The parser's own messages may quote
/// the body, so they are not passed on.
fn form_error(error: multer::Error) -> ApiError {
    use multer::Error::*;
    match error {
        StreamReadFailed(source) => match source.downcast::<ApiError>() {
            Ok(error) => *error,
            Err(source) => ApiError::BodyRead(source.to_string()),
        },
        IncompleteStream | IncompleteFieldData { .. } => {
            ApiError::InvalidMultipart("the body ends before its closing boundary")
        }
        IncompleteHeaders | ReadHeaderFailed(_) => {
            ApiError::InvalidMultipart("a part's headers are malformed")
        }
        DecodeHeaderName { .. } | DecodeHeaderValue { .. } => {
            ApiError::InvalidMultipart("a part's headers are not text")
        }
        _ => ApiError::InvalidMultipart("the body is not a multipart form"),
    }
}

/// The answer: 202 with the items when one file was accepted, else the first refusal's
/// status.
fn answer(state: &AppState, items: Vec<Listed>) -> Response {
    let mut first_accepted: Option<Uuid> = None;
    let mut first_refusal: Option<ApiError> = None;
    let listed: Vec<Value> = items
        .into_iter()
        .map(|item| match item {
            Listed::Accepted(record) => {
                state.metrics.accepted(&record);
                first_accepted.get_or_insert(record.media_id);
                json!(record.public())
            }
            Listed::Refused(Refusal {
                part,
                filename,
                error,
                refused: count,
            }) => {
                count_refusal(state, &error);
                let mut refused = json!({ "part": part, "error": error.detail() });
                if count > 1 {
                    refused["refused"] = json!(count);
                }
                if let Some(filename) = filename {
                    refused["filename"] = json!(filename);
                }
                if first_refusal.is_none() {
                    first_refusal = Some(error);
                }
                refused
            }
        })
        .collect();
    match (first_accepted, first_refusal) {
        (Some(id), _) => (
            StatusCode::ACCEPTED,
            [(LOCATION, format!("/images/{id}"))],
            Json(json!({ "media_id": id, "items": listed })),
        )
            .into_response(),
        (None, Some(error)) => {
            let (status, _) = error.status_and_code();
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(%error, "multipart upload failed");
            }
            (
                status,
                Json(json!({ "error": error.detail(), "items": listed })),
            )
                .into_response()
        }
        (None, None) => {
            count_refusal(state, &ApiError::NoFiles);
            ApiError::NoFiles.into_response()
        }
    }
}
