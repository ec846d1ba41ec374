//! Mail (`notify_email`, `callbacks.email`) through a real SMTP server on 127.0.0.1
//! (aiosmtpd, `tests/support/smtp_server.py`): the message, its link and the attached
//! thumbnail as the server received them; a refused first attempt (451) and a server not yet
//! listening retried until taken, a 554 failing at once; addresses outside
//! `email.allowed_domains`, or any with mail off, refused at the door. Embedded, and with the
//! records in PostgreSQL and the media in S3 (where the attachment is read from).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};
use support::{Backend, Gateway, fixture, free_port};

/// An aiosmtpd server the test started, and the directory it writes what it takes to.
struct SmtpServer {
    child: Child,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts one on `port`, answering the messages' DATA with `replies` in turn.
    fn start(port: u16, replies: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .args(replies)
            .spawn()
            .expect("python3 runs (scripts/test installs aiosmtpd)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.path().join("ready").exists() {
            assert!(Instant::now() < deadline, "the SMTP server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir }
    }

    /// The `n`-th message taken (from 1), as the server decoded it.
    fn message(&self, n: usize) -> Option<Value> {
        let path: PathBuf = self.dir.path().join(format!("{n}.json"));
        std::fs::read(path)
            .ok()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap())
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mail settings, through the SMTP server on `port`, with fast retries.
fn mail_yaml(port: u16) -> String {
    format!(
        "email: {{smtp_url: 'smtp://127.0.0.1:{port}', from: 'Thumbnails <thumbnails@example.org>', allowed_domains: [example.org], public_url: 'https://thumbs.example.org/'}}\n\
         callbacks: {{initial_backoff_ms: 200, max_backoff_secs: 1, max_attempts: 20}}\n"
    )
}

/// Uploads the JPEG fixture with `query`; gives the answer.
async fn upload(gateway: &Gateway, query: &str) -> support::Answer {
    gateway
        .request(
            Method::POST,
            &format!("/images?{query}"),
            &[("content-type", "image/jpeg")],
            STANDARD.encode(fixture("jpeg-baseline.jpg")),
        )
        .await
}

/// Waits until the record's mail is no longer pending; gives the record.
async fn wait_mail_settled(gateway: &Gateway, media_id: &str) -> Value {
    gateway
        .wait_record(media_id, |record| {
            record["email"]["state"] != "pending" && record["state"] != "Processing"
        })
        .await
}

async fn a_final_record_is_mailed_with_its_thumbnail(backend: Backend) {
    let port = free_port();
    // The server refuses the first message (451), then takes the next.
    let server = SmtpServer::start(port, &["451", "250"]);
    let gateway = Gateway::start(backend, &mail_yaml(port)).await;
    let answer = upload(&gateway, "sizes=120x&notify_email=Ada@Example.org").await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let id = answer.media_id();
    assert_eq!(answer.json()["email"]["state"], "pending");

    let record = wait_mail_settled(&gateway, &id).await;
    let mail = &record["email"];
    assert_eq!(mail["state"], "delivered", "{record}");
    assert_eq!(mail["to"], "Ada@Example.org");
    assert_eq!(mail["attempts"], 2, "{record}");
    assert_eq!(mail["last_code"], 250);
    let events = gateway.get(&format!("/images/{id}/events")).await.json();
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["event"].as_str())
        .collect();
    assert!(
        kinds.contains(&"email_retry") && kinds.contains(&"email_sent"),
        "{kinds:?}"
    );

    let message = server.message(1).expect("the second attempt was taken");
    assert!(server.message(2).is_none(), "taken once");
    assert_eq!(message["to"], json!(["Ada@Example.org"]));
    assert_eq!(message["from"], "thumbnails@example.org");
    assert!(message["subject"].as_str().unwrap().contains(&id));
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("https://thumbs.example.org/images/{id}")),
        "{text}"
    );
    let attachments = message["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["filename"], format!("{id}.jpeg"));
    assert_eq!(attachments[0]["content_type"], "image/jpeg");
    let attached = STANDARD
        .decode(attachments[0]["data"].as_str().unwrap())
        .unwrap();
    let thumbnail = gateway
        .request(
            Method::GET,
            &format!("/images/{id}/thumbnails/120x"),
            &[("accept", "image/*")],
            Bytes::new(),
        )
        .await;
    assert_eq!(thumbnail.status, 200);
    assert_eq!(attached, thumbnail.body.to_vec(), "the thumbnail itself");

    let metrics = String::from_utf8(gateway.get("/metrics").await.body.to_vec()).unwrap();
    assert!(metrics.contains("thumbnailify_email_deliveries_total{outcome=\"retry\"} 1"));
    assert!(metrics.contains("thumbnailify_email_deliveries_total{outcome=\"delivered\"} 1"));
}

#[tokio::test]
async fn embedded_a_final_record_is_mailed_with_its_thumbnail() {
    a_final_record_is_mailed_with_its_thumbnail(Backend::Embedded).await;
}

#[tokio::test]
async fn distributed_a_final_record_is_mailed_with_its_thumbnail() {
    a_final_record_is_mailed_with_its_thumbnail(Backend::Distributed).await;
}

#[tokio::test]
async fn a_server_not_listening_yet_is_tried_again() {
    let port = free_port();
    let gateway = Gateway::start(Backend::Embedded, &mail_yaml(port)).await;
    let id = upload(&gateway, "notify_email=ada@example.org")
        .await
        .media_id();
    let record = gateway
        .wait_record(&id, |record| {
            record["email"]["attempts"].as_u64() >= Some(1)
        })
        .await;
    assert_eq!(record["email"]["state"], "pending", "{record}");
    assert!(record["email"]["last_error"].as_str().is_some(), "{record}");
    let server = SmtpServer::start(port, &[]);
    let record = wait_mail_settled(&gateway, &id).await;
    assert_eq!(record["email"]["state"], "delivered", "{record}");
    assert!(server.message(1).is_some());
}

#[tokio::test]
async fn a_permanent_refusal_fails_at_once_and_callbacks_email_is_the_default() {
    let port = free_port();
    let server = SmtpServer::start(port, &["554"]);
    let yaml = format!("{}callbacks: {{email: ops@example.org}}\n", mail_yaml(port)).replace(
        "callbacks: {initial_backoff_ms: 200, max_backoff_secs: 1, max_attempts: 20}\n",
        "",
    );
    let gateway = Gateway::start(Backend::Embedded, &yaml).await;
    let id = upload(&gateway, "").await.media_id();
    let record = wait_mail_settled(&gateway, &id).await;
    let mail = &record["email"];
    assert_eq!(mail["to"], "ops@example.org", "{record}");
    assert_eq!(mail["state"], "failed", "{record}");
    assert_eq!(mail["attempts"], 1, "{record}");
    assert_eq!(mail["last_code"], 554, "{record}");
    assert!(server.message(1).is_none());
    // An upload's own address wins over the default.
    let id = upload(&gateway, "notify_email=ada@example.org")
        .await
        .media_id();
    assert_eq!(
        gateway.wait_final(&id).await["email"]["to"],
        "ada@example.org"
    );
}

#[tokio::test]
async fn mail_goes_only_to_allowed_domains_and_only_when_on() {
    let port = free_port();
    let gateway = Gateway::start(Backend::Embedded, &mail_yaml(port)).await;
    for address in [
        "eve@example.net",
        "eve@example.org.example.net",
        "eve@sub.example.org",
        "not-an-address",
    ] {
        let answer = upload(&gateway, &format!("notify_email={address}")).await;
        answer.assert_error(400, "email_not_allowed");
        let error = &answer.json()["error"];
        assert_eq!(error["parameter"], "notify_email");
        assert!(
            !error["message"].as_str().unwrap().contains(address),
            "{error}"
        );
    }
    // As a JSON envelope's member, and as a form's field.
    let envelope = json!({
        "data": STANDARD.encode(fixture("jpeg-baseline.jpg")),
        "media_type": "image/jpeg",
        "notify_email": "eve@example.net",
    });
    gateway
        .post_json(&envelope)
        .await
        .assert_error(400, "email_not_allowed");
    let form = support::form::Form::default()
        .file(
            "image",
            "a.jpg",
            Some("image/jpeg"),
            &fixture("jpeg-baseline.jpg"),
        )
        .field("notify_email", "eve@example.net")
        .finish();
    support::form::post_form(&gateway, "", form)
        .await
        .assert_error(400, "email_not_allowed");
    assert_eq!(gateway.record_count().await, 0, "nothing accepted");

    // Mail off: every address is refused, and the document does not offer the parameter.
    let off = Gateway::start(Backend::Embedded, "").await;
    upload(&off, "notify_email=ada@example.org")
        .await
        .assert_error(400, "email_not_allowed");
    let document = off.get("/openapi.json").await.json().to_string();
    assert!(!document.contains("notify_email"));
    let on = gateway.get("/openapi.json").await.json().to_string();
    assert!(on.contains("notify_email"));
}
