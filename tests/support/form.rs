//! `multipart/form-data` bodies, composed as a client would, and their POST.

use hyper::Method;

use super::{Answer, Gateway};

/// The media id of the first item of a form's answer.
pub fn first_media_id(answer: &Answer) -> String {
    answer.json()["items"][0]["media_id"]
        .as_str()
        .expect("a first accepted item")
        .to_owned()
}

/// The boundary of every test form.
pub const BOUNDARY: &str = "----thumbnailify-test-7MA4YWxkTrZu0gW";

/// A multipart form, composed as a client would.
#[derive(Default)]
pub struct Form {
    body: Vec<u8>,
}

impl Form {
    /// Adds a text field.
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
        self
    }

    /// Adds a file; `content_type` `None` sends the part without one.
    pub fn file(
        mut self,
        name: &str,
        filename: &str,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Self {
        self.body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
            )
            .as_bytes(),
        );
        if let Some(content_type) = content_type {
            self.body
                .extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    /// The body, closed.
    pub fn finish(mut self) -> Vec<u8> {
        self.body
            .extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.body
    }
}

pub async fn post_form(gateway: &Gateway, query: &str, body: Vec<u8>) -> Answer {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    gateway
        .request(
            Method::POST,
            &format!("/images{query}"),
            &[("content-type", &content_type)],
            body,
        )
        .await
}
