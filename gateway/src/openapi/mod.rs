//! The API contract: an OpenAPI 3.1 document generated from the code (utoipa), served at
//! `GET /openapi.json`, and Swagger UI at `/docs` with its assets compiled into the binary.
//!
//! The operations are declared on their handlers (`#[utoipa::path]` in [`crate::routes`]);
//! the records' schemas are derived from the types the API serialises (`common::record`).
//! What every operation shares is added here by [`Shared`]: the errors any request can get
//! before it reaches its handler (a malformed request, a missing API key, an overloaded
//! service), the `x-request-id` header of every answer, and the bearer scheme. [`add_links`] ties
//! an upload's answer to the operations on the record it created (read, history, thumbnail,
//! delete), so that clients and stateful testers can follow them.
//!
//! The document served is fitted to the running service ([`profile`]): what its configuration
//! or build turns off (callbacks, AVIF and HEIC, videos, API keys) is not offered.
//!
//! The document and the page are public even when API keys are configured: they describe the
//! API, not its data.

mod profile;
mod representations;

use std::collections::BTreeMap;

use axum::Router;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder,
};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

pub use profile::Profile;

use crate::routes;
use crate::state::AppState;

/// The path of the document.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// The path of the human page.
pub const PAGE_PATH: &str = "/docs";

/// Whether `path` is the document or the page (open without an API key).
pub fn is_public(path: &str) -> bool {
    path == DOCUMENT_PATH || path == PAGE_PATH || path.starts_with("/docs/")
}

/// The generated document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Thumbnailify",
        description = "Upload images and videos (base64, a JSON envelope, multipart files or a \
                       URL); get a record at once; wait, poll or receive a signed callback; \
                       fetch the thumbnails asked for; delete what is no longer needed.",
        license(name = "MIT"),
    ),
    paths(
        routes::upload::upload,
        routes::list::list,
        routes::record::get,
        routes::events::events,
        routes::thumbnail::get,
        routes::thumbnail::variant,
        routes::delete::delete,
        routes::health::healthz,
        routes::health::readyz,
        routes::metrics::metrics,
        routes::dashboard::data,
        routes::dashboard::retry,
        routes::dashboard::discard,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, Envelope, DataEnvelope, UrlEnvelope, UploadOptions, UploadForm,
        UploadItems, UploadItem, Accepted, Health, Readiness
    )),
    tags(
        (name = "images", description = "Uploads, their records and their thumbnails"),
        (name = "operations", description = "Health, readiness and metrics"),
    ),
    modifiers(&Shared),
)]
pub struct ApiDoc;

/// The generated document with the links of [`add_links`] and the file representations of
/// [`representations`], for every configuration.
fn generated() -> Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    add_links(&mut document);
    representations::describe(&mut document);
    document
}

/// The document of a service with `profile`, as JSON.
pub fn document(profile: &Profile) -> Value {
    let mut document = generated();
    profile::fit(&mut document, profile);
    document
}

/// The routes of the document and of the page, for a service with `profile`.
pub fn router(profile: &Profile) -> Router<AppState> {
    SwaggerUi::new(PAGE_PATH)
        .external_url_unchecked(DOCUMENT_PATH, document(profile))
        .into()
}

/// Every error's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error: a stable code for programs, a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The error's slug (`invalid_parameter`, `media_type_mismatch`, `not_found`, …; the
    /// README's table lists them all).
    #[schema(example = "invalid_parameter")]
    pub code: String,
    /// Why, for people. Never echoes the bytes sent.
    pub message: String,
    /// For `invalid_parameter` of a variant, `callback_not_allowed` and
    /// `email_not_allowed`: the parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// For `unknown_variant`: the variants the record has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<String>>,
}

/// A one-pixel PNG in base64: the example upload, so that clients and testers following the
/// document have a file the service accepts.
pub const EXAMPLE_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// `POST /images` as JSON: the file in base64 with its media type, or a URL to fetch it from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Envelope {
    /// The file itself.
    Data(DataEnvelope),
    /// Where to fetch it.
    Url(UrlEnvelope),
}

/// An upload of the file in base64.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataEnvelope {
    /// The file in base64 (standard alphabet, padding optional, a `data:` prefix accepted).
    #[schema(content_encoding = "base64", example = json!(EXAMPLE_PNG))]
    pub data: String,
    /// The file's media type.
    #[schema(example = json!("image/png"))]
    pub media_type: common::media::MediaType,
    /// The rest.
    #[serde(flatten)]
    pub options: UploadOptions,
}

/// An upload by URL: the worker fetches the file.
#[derive(Debug, Serialize, ToSchema)]
pub struct UrlEnvelope {
    /// An `http(s)` URL; internal addresses are refused unless allowed.
    #[schema(format = "uri")]
    pub url: String,
    /// The rest.
    #[serde(flatten)]
    pub options: UploadOptions,
}

/// The members of an envelope that are the query parameters of the same names.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadOptions {
    /// The client's file name, kept as metadata.
    pub name: Option<String>,
    /// Boxes and preset names, comma-separated.
    pub sizes: Option<String>,
    /// How the image meets each box.
    pub fit: Option<common::variant::Fit>,
    /// The output format.
    pub format: Option<common::config::OutputFormat>,
    /// Quality of lossy output: JPEG, WebP, AVIF.
    #[schema(minimum = 1, maximum = 100)]
    pub quality: Option<u8>,
    /// Whether images smaller than a box are scaled up.
    pub enlarge: Option<bool>,
    /// WebP: lossless instead of lossy at `quality`.
    pub lossless: Option<bool>,
    /// `fit=cover`: the part of the image the crop keeps.
    pub gravity: Option<common::variant::Gravity>,
    /// `gravity=focus` (implied): the point to keep, `x,y` as fractions.
    pub focus: Option<common::variant::FocalPoint>,
    /// `srgb`: converted to sRGB; `keep`: the source's colours and profile.
    pub color: Option<common::config::ColorMode>,
    /// An animated GIF or WebP gives an animation, a video an animated preview (format
    /// `auto`, `webp` or `gif`).
    pub animated: Option<bool>,
    /// Where to POST the record when it is final.
    #[schema(format = "uri")]
    pub callback_url: Option<String>,
    /// Whom to mail the record to when it is final.
    #[schema(format = "email")]
    pub notify_email: Option<String>,
}

/// `POST /images` as a form: every part with a filename is one upload, its bytes as they are;
/// the text fields apply to every file wherever they come in the form, and are checked as the
/// query's are.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadForm {
    /// As the query parameter.
    pub name: Option<String>,
    /// As the query parameter.
    pub sizes: Option<String>,
    /// As the query parameter.
    pub fit: Option<common::variant::Fit>,
    /// As the query parameter.
    pub format: Option<common::config::OutputFormat>,
    /// As the query parameter.
    #[schema(minimum = 1, maximum = 100)]
    pub quality: Option<u8>,
    /// As the query parameter.
    pub enlarge: Option<bool>,
    /// As the query parameter.
    pub lossless: Option<bool>,
    /// As the query parameter.
    pub gravity: Option<common::variant::Gravity>,
    /// As the query parameter.
    pub focus: Option<common::variant::FocalPoint>,
    /// As the query parameter.
    pub color: Option<common::config::ColorMode>,
    /// As the query parameter.
    pub animated: Option<bool>,
    /// As the query parameter.
    pub callback_url: Option<String>,
    /// As the query parameter.
    pub notify_email: Option<String>,
    /// The files (any field name; `image` here), before or after the text fields.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub image: Vec<Vec<u8>>,
}

/// The answer to a form: every file in part order, its record or why it was refused.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadItems {
    /// The first accepted file's record, the one `Location` names (so that the links of a 202
    /// hold for a form as for a single upload).
    pub media_id: uuid::Uuid,
    /// Records (accepted files) and refusals (`{"part", "filename", "error"}`).
    pub items: Vec<UploadItem>,
}

/// One file of a form.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UploadItem {
    /// Accepted: its record.
    Accepted(Box<common::record::Record>),
    /// Refused: a file, the files past a limit (counted in `refused`), or where the form was
    /// cut.
    Refused {
        /// The part's index in the form, from 0 (the first, for several).
        part: u32,
        /// The file's name, for a file.
        #[serde(skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        /// How many parts this item stands for, when more than one.
        #[serde(skip_serializing_if = "Option::is_none")]
        refused: Option<u32>,
        /// Why it was refused.
        error: ErrorDetail,
    },
}

/// What an upload is answered with: the record, or, for a form, every file's.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Accepted {
    /// A single upload's record.
    Record(Box<common::record::Record>),
    /// A form's files.
    Items(UploadItems),
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`: the back-ends in use, and whether videos can be thumbnailed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    #[schema(example = "ready")]
    pub status: String,
    /// `embedded` or `rabbitmq`.
    pub queue: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// `dir` or `s3`.
    pub storage: String,
    /// `on`, or `off: ` and why.
    pub video: String,
}

/// A JSON error response.
pub fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// What every operation shares: the errors of the request checks, the request id, and the
/// bearer scheme.
struct Shared;

impl Modify for Shared {
    fn modify(&self, document: &mut Document) {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "One of the configured API keys; without keys configured the API is open.",
                    ))
                    .build(),
            ),
        );
        let shared: BTreeMap<&str, (&str, Option<&str>)> = BTreeMap::from([
            (
                "400",
                (
                    "A malformed request: its request line or a header, its Host header, a \
                     parameter, the id in the path (`malformed_request`, `invalid_host`, \
                     `invalid_parameter`, `invalid_id`, …)",
                    None,
                ),
            ),
            (
                "401",
                (
                    "No API key, or one not accepted (`unauthorized`), when keys are configured",
                    None,
                ),
            ),
            (
                "414",
                ("The request target is over 8 KiB (`uri_too_long`)", None),
            ),
            (
                "431",
                (
                    "Over 100 headers or 16 KiB of them (`headers_too_large`)",
                    None,
                ),
            ),
            (
                "503",
                (
                    "Too many connections (`too_many_connections`), the store or media \
                     storage unavailable (`store_unavailable`, `storage_unavailable`); retry \
                     after `Retry-After` seconds",
                    Some("Retry-After"),
                ),
            ),
        ]);
        for item in document.paths.paths.values_mut() {
            for operation in operations(item) {
                for (status, (description, header)) in &shared {
                    let responses = &mut operation.responses.responses;
                    if responses.contains_key(*status) {
                        continue;
                    }
                    let mut response = error_response(description);
                    if let Some(header) = header {
                        response
                            .headers
                            .insert((*header).to_owned(), seconds_header());
                    }
                    responses.insert((*status).to_owned(), RefOr::T(response));
                }
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        response.headers.insert(
                            "x-request-id".to_owned(),
                            HeaderBuilder::new()
                                .schema(String::schema())
                                .description(Some(
                                    "The request's id: the one sent, if short and plain, else a new one",
                                ))
                                .build(),
                        );
                    }
                }
                operation.security = Some(vec![
                    utoipa::openapi::security::SecurityRequirement::new::<_, _, &str>(
                        "api_key",
                        [],
                    ),
                    utoipa::openapi::security::SecurityRequirement::default(),
                ]);
            }
        }
    }
}

/// A `Retry-After` header: whole seconds.
fn seconds_header() -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(u64::schema())
        .description(Some("Seconds to wait before trying again"))
        .build()
}

/// The operations of a path item.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Links an accepted upload to the operations on the record it created (written as JSON:
/// utoipa 5.5 serialises a link's `operationId` as `operation_id`).
fn add_links(document: &mut Value) {
    let Some(accepted) = document.pointer_mut("/paths/~1images/post/responses/202") else {
        return;
    };
    let links: serde_json::Map<String, Value> = [
        ("GetRecord", "get_record"),
        ("GetEvents", "get_events"),
        ("GetThumbnail", "get_thumbnail"),
        ("DeleteRecord", "delete_record"),
    ]
    .into_iter()
    .map(|(name, operation)| {
        let link = json!({
            "operationId": operation,
            "parameters": {"media_id": "$response.body#/media_id"},
        });
        (name.to_owned(), link)
    })
    .collect();
    accepted["links"] = Value::Object(links);
}
