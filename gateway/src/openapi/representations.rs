//! How files travel in the contract, described in the schema words of OpenAPI 3.1 so that
//! client generators make methods of them instead of skipping them:
//!
//! - the file's own bytes, `application/octet-stream` (an upload's body, a thumbnail asked
//!   for with that `Accept`): `type: string, format: binary`, what generators turn into a
//!   file or bytes argument and return value;
//! - the file in base64 under its own media type (a base64 upload, a thumbnail's default
//!   answer): `type: string, contentEncoding: base64, contentMediaType: <the type>`.
//!
//! utoipa writes every one of them as a bare `type: string`; this fills them in. And a
//! thumbnail request's `Accept` parameter gets `application/octet-stream` as its schema's
//! default: what a generated client sends unless told otherwise, so that its thumbnail calls
//! return the bytes (GitHub's description does the same with its `accept` parameter). A
//! request without the header still gets base64, as the parameter's description says.

use serde_json::{Value, json};

/// The media type of a file's own bytes.
const OCTET_STREAM: &str = "application/octet-stream";

/// Describes every file-carrying request body and answer of `document`.
pub fn describe(document: &mut Value) {
    let Some(Value::Object(paths)) = document.get_mut("paths") else {
        return;
    };
    for item in paths.values_mut() {
        let Value::Object(item) = item else { continue };
        for operation in item.values_mut() {
            if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
                for parameter in parameters {
                    if parameter["in"] == "header" && parameter["name"] == "Accept" {
                        parameter["schema"] = json!({"type": "string", "default": OCTET_STREAM});
                    }
                }
            }
            if let Some(Value::Object(content)) = operation.pointer_mut("/requestBody/content") {
                describe_content(content, "The file in base64");
            }
            if let Some(Value::Object(responses)) = operation.get_mut("responses") {
                for response in responses.values_mut() {
                    if let Some(Value::Object(content)) = response.get_mut("content") {
                        describe_content(
                            content,
                            "In base64, unless `Accept` names this media type or `image/*`: \
                             then the file's own bytes",
                        );
                    }
                }
            }
        }
    }
}

/// Fills in the schemas of one content map's file types.
fn describe_content(content: &mut serde_json::Map<String, Value>, base64: &str) {
    for (media_type, entry) in content.iter_mut() {
        let schema = if media_type == OCTET_STREAM {
            json!({"type": "string", "format": "binary", "description": "The file's own bytes"})
        } else if media_type.starts_with("image/") || media_type.starts_with("video/") {
            json!({
                "type": "string",
                "contentEncoding": "base64",
                "contentMediaType": media_type,
                "description": base64,
            })
        } else {
            continue;
        };
        entry["schema"] = schema;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_and_thumbnails_say_how_their_files_are_sent() {
        let document = super::super::generated();
        let upload = &document["paths"]["/images"]["post"]["requestBody"]["content"];
        assert_eq!(upload[OCTET_STREAM]["schema"]["format"], "binary");
        assert_eq!(upload["image/png"]["schema"]["contentEncoding"], "base64");
        assert_eq!(
            upload["video/mp4"]["schema"]["contentMediaType"],
            "video/mp4"
        );
        assert_eq!(
            upload["application/json"]["schema"]["$ref"],
            "#/components/schemas/Envelope"
        );
        for path in [
            "/images/{media_id}/thumbnail",
            "/images/{media_id}/thumbnails/{name}",
        ] {
            let answer = &document["paths"][path]["get"]["responses"]["200"]["content"];
            assert_eq!(answer[OCTET_STREAM]["schema"]["format"], "binary", "{path}");
            assert_eq!(
                answer["image/webp"]["schema"]["contentMediaType"],
                "image/webp"
            );
        }
    }
}
