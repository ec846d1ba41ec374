//! The document as this service answers: what its configuration and its build turn off is
//! not offered. A client generated from it, or a tester following it, sends nothing the
//! running service refuses for being off:
//!
//! - callbacks off (no `callbacks.secret`): no `callback_url`, in the query, the envelope or
//!   the form; mail off (no `email.smtp_url`): no `notify_email`;
//! - media types this build cannot read (HEIC and AVIF without the `heif` feature; videos
//!   without FFmpeg): not among an upload's media types or request bodies;
//! - output formats this build cannot write (AVIF without the `heif` feature): not among
//!   the `format` values a request may ask for, nor among a thumbnail's content types;
//! - no API keys: no 401 answers.
//!
//! Records keep the whole media type schema: one stored by another build still validates.

use common::config::OutputFormat;
use common::media::{ALL, MediaType};
use serde_json::{Value, json};

/// What the running service accepts.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Whether uploads may ask for callbacks.
    pub callbacks: bool,
    /// Whether uploads may ask for mail.
    pub mail: bool,
    /// Whether API keys are required.
    pub api_keys: bool,
    /// The media types an upload may have.
    pub readable: Vec<MediaType>,
    /// The output formats a request may ask for.
    pub writable: Vec<OutputFormat>,
}

impl Profile {
    /// The same, with mail on or off.
    pub fn with_mail(self, mail: bool) -> Self {
        Self { mail, ..self }
    }

    /// The profile of a service with callbacks on or off, API keys or none, and video on or
    /// off, in this build.
    pub fn new(callbacks: bool, api_keys: bool, video: bool) -> Self {
        let readable = ALL
            .into_iter()
            .filter(|media_type| {
                if media_type.is_video() {
                    video
                } else {
                    worker::decode::reads(*media_type)
                }
            })
            .collect();
        let writable = [
            OutputFormat::Auto,
            OutputFormat::Jpeg,
            OutputFormat::Png,
            OutputFormat::Webp,
            OutputFormat::Avif,
        ]
        .into_iter()
        .filter(|format| worker::encode::supports(*format))
        .collect();
        Self {
            callbacks,
            mail: false,
            api_keys,
            readable,
            writable,
        }
    }
}

/// The schemas and operations a request is made from.
const REQUEST_SCHEMAS: [&str; 3] = ["UploadOptions", "UploadForm", "DataEnvelope"];

/// Fits `document` to `profile`.
pub fn fit(document: &mut Value, profile: &Profile) {
    let readable: Vec<&str> = profile.readable.iter().map(|t| t.as_str()).collect();
    let writable: Vec<&str> = profile.writable.iter().map(|f| f.as_str()).collect();
    let media_types = json!({"type": "string", "enum": readable});
    let formats = json!({"type": "string", "enum": writable});
    // Request schemas and parameters take only what this service accepts.
    for name in REQUEST_SCHEMAS {
        if let Some(schema) = document.pointer_mut(&format!("/components/schemas/{name}")) {
            replace_ref(schema, "MediaType", &media_types);
            replace_ref(schema, "OutputFormat", &formats);
            if let Some(Value::Object(properties)) = schema.get_mut("properties") {
                if !profile.callbacks {
                    properties.remove("callback_url");
                }
                if !profile.mail {
                    properties.remove("notify_email");
                }
            }
        }
    }
    if let Some(Value::Object(paths)) = document.get_mut("paths") {
        for item in paths.values_mut() {
            let Value::Object(item) = item else { continue };
            for operation in item.values_mut() {
                fit_operation(operation, profile, &readable, &formats);
            }
        }
    }
}

/// Fits one operation: its parameters, its request body's types, its answers.
fn fit_operation(operation: &mut Value, profile: &Profile, readable: &[&str], formats: &Value) {
    if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
        if !profile.callbacks {
            parameters.retain(|parameter| parameter["name"] != "callback_url");
        }
        if !profile.mail {
            parameters.retain(|parameter| parameter["name"] != "notify_email");
        }
        for parameter in parameters.iter_mut() {
            replace_ref(parameter, "OutputFormat", formats);
        }
    }
    if let Some(Value::Object(content)) = operation.pointer_mut("/requestBody/content") {
        content.retain(|media_type, _| {
            !media_type.starts_with("image/") && !media_type.starts_with("video/")
                || readable.contains(&media_type.as_str())
        });
    }
    let Some(Value::Object(responses)) = operation.get_mut("responses") else {
        return;
    };
    if !profile.api_keys {
        responses.remove("401");
    }
    let avif = profile.writable.contains(&OutputFormat::Avif);
    for response in responses.values_mut() {
        if let Some(Value::Object(content)) = response.get_mut("content")
            && !avif
        {
            content.remove("image/avif");
        }
    }
}

/// Replaces every reference to the schema `name` inside `value` with `with`.
fn replace_ref(value: &mut Value, name: &str, with: &Value) {
    let target = format!("#/components/schemas/{name}");
    match value {
        Value::Object(object) if object.get("$ref").and_then(Value::as_str) == Some(&target) => {
            *value = with.clone();
        }
        Value::Object(object) => object
            .values_mut()
            .for_each(|inner| replace_ref(inner, name, with)),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|inner| replace_ref(inner, name, with)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(profile: &Profile) -> String {
        let mut document = super::super::generated();
        fit(&mut document, profile);
        document.to_string()
    }

    #[test]
    fn what_is_off_is_not_offered() {
        let off = Profile {
            callbacks: false,
            mail: false,
            api_keys: false,
            readable: vec![MediaType::Png, MediaType::Jpeg],
            writable: vec![OutputFormat::Jpeg, OutputFormat::Png],
        };
        let text = fitted(&off);
        assert!(!text.contains("callback_url"), "callback_url offered");
        assert!(!text.contains("notify_email"), "notify_email offered");
        assert!(!text.contains("\"401\""));
        assert!(!text.contains("\"image/avif\":"), "AVIF offered");
        assert!(!text.contains("\"video/mp4\":"));
        let document: Value = serde_json::from_str(&text).unwrap();
        let envelope = document["components"]["schemas"]["DataEnvelope"].to_string();
        assert!(envelope.contains("image/jpeg") && !envelope.contains("image/gif"));
        let options = document["components"]["schemas"]["UploadOptions"].to_string();
        assert!(
            options.contains("\"png\"") && !options.contains("\"webp\""),
            "{options}"
        );
        // Records keep the whole schema: one made elsewhere still validates.
        let record_types = &document["components"]["schemas"]["MediaType"]["enum"];
        assert!(record_types.as_array().unwrap().len() > 2);

        let on = Profile {
            callbacks: true,
            mail: true,
            api_keys: true,
            readable: ALL.to_vec(),
            writable: vec![OutputFormat::Avif],
        };
        let text = fitted(&on);
        assert!(text.contains("callback_url"));
        assert!(text.contains("notify_email"));
        assert!(text.contains("\"401\""));
        assert!(text.contains("\"image/avif\":"));
        assert!(text.contains("\"video/x-matroska\":"));
    }
}
