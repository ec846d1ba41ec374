//! API keys as tenants, on every back-end (SQLite and PostgreSQL stores): two tenants, each
//! over every endpoint that names a record. A tenant sees, waits for, lists, fetches and
//! deletes its own uploads only; another tenant's record is 404 exactly as one that does
//! not exist; uploading another tenant's bytes shares them without saying so; and the
//! dashboard is for operators.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::Value;
use support::form::{Form, first_media_id};
use support::{Answer, Backend, Gateway, fixture};

const CONFIG: &str = "keep_raw: true\n\
     auth: {tenants: {acme: [acme-key], globex: [globex-key-old, globex-key]}, operators: [ops], \
     api_keys: [plain-key]}\n";

/// One tenant's view of the gateway.
struct Client<'a> {
    gateway: &'a Gateway,
    bearer: String,
}

impl<'a> Client<'a> {
    fn new(gateway: &'a Gateway, key: &str) -> Self {
        Self {
            gateway,
            bearer: format!("Bearer {key}"),
        }
    }

    async fn send(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let mut headers = vec![("authorization", self.bearer.as_str())];
        if !content_type.is_empty() {
            headers.push(("content-type", content_type));
        }
        self.gateway.request(method, path, &headers, body).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, "", Vec::new()).await
    }

    async fn upload(&self, name: &str) -> Answer {
        let body = STANDARD.encode(fixture(name)).into_bytes();
        let answer = self.send(Method::POST, "/images", "image/png", body).await;
        assert_eq!(
            answer.status,
            202,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer
    }

    async fn wait_final(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let record = self.get(&format!("/images/{id}?wait=5")).await;
            assert_eq!(
                record.status,
                200,
                "{}",
                String::from_utf8_lossy(&record.body)
            );
            let record = record.json();
            if record["state"] != "Processing" {
                return record;
            }
            assert!(Instant::now() < deadline, "{record}");
        }
    }

    async fn listed(&self) -> Vec<String> {
        self.get("/images?limit=1000").await.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["media_id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Every request about a record a tenant may make, each of which must be 404 for a record
/// that is not its own.
async fn every_request_about(client: &Client<'_>, id: &str) -> Vec<(String, Answer)> {
    let mut answers = Vec::new();
    for path in [
        format!("/images/{id}"),
        format!("/images/{id}?wait=30"),
        format!("/images/{id}/events"),
        format!("/images/{id}/thumbnail"),
        format!("/images/{id}/thumbnails/100x100"),
        format!("/images/{id}/thumbnails/48x48"),
    ] {
        let answer = client.get(&path).await;
        answers.push((path, answer));
    }
    let delete = client
        .send(Method::DELETE, &format!("/images/{id}"), "", Vec::new())
        .await;
    answers.push((format!("DELETE /images/{id}"), delete));
    answers
}

/// The error's code and message with the id taken out: what a client could tell apart.
fn shape(answer: &Answer, id: &str) -> (u16, String) {
    let text = String::from_utf8_lossy(&answer.body).replace(id, "ID");
    (answer.status.as_u16(), text)
}

async fn a_tenant_sees_only_its_own_uploads(backend: Backend) {
    let gateway = Gateway::start(backend, CONFIG).await;
    let acme = Client::new(&gateway, "acme-key");
    let globex = Client::new(&gateway, "globex-key");
    let globex_old = Client::new(&gateway, "globex-key-old");
    let plain = Client::new(&gateway, "plain-key");

    let acme_id = acme.upload("png-rgb.png").await.media_id();
    assert_eq!(acme.wait_final(&acme_id).await["state"], "Completed");
    // Globex uploads the same bytes: stored once, but nothing says acme has them.
    let same = globex.upload("png-rgb.png").await;
    assert!(
        !String::from_utf8_lossy(&same.body).contains(&acme_id),
        "{:?}",
        same.body
    );
    assert_eq!(same.json()["duplicate_of"], Value::Null);
    let globex_id = same.media_id();
    let record = globex.wait_final(&globex_id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert!(!record.to_string().contains(&acme_id), "{record}");
    let events = globex.get(&format!("/images/{globex_id}/events")).await;
    assert!(!String::from_utf8_lossy(&events.body).contains(&acme_id));
    // A form, by the tenant's other key: the same tenant.
    let form = Form::default()
        .file("image", "a.png", Some("image/png"), &fixture("small.png"))
        .finish();
    let boundary = format!("multipart/form-data; boundary={}", support::form::BOUNDARY);
    let form_id = first_media_id(
        &globex_old
            .send(Method::POST, "/images", &boundary, form)
            .await,
    );
    assert_eq!(globex.wait_final(&form_id).await["state"], "Completed");

    // Lists: each its own.
    assert_eq!(acme.listed().await, std::slice::from_ref(&acme_id));
    let mut globex_ids = vec![globex_id.clone(), form_id.clone()];
    globex_ids.sort();
    assert_eq!(globex.listed().await, globex_ids);
    assert_eq!(globex_old.listed().await, globex_ids);
    assert!(plain.listed().await.is_empty());

    // Every endpoint: another tenant's record is a record that does not exist.
    let missing = "01a2b3c4-0000-7000-8000-000000000000";
    let theirs = every_request_about(&globex, &acme_id).await;
    let nothing = every_request_about(&globex, missing).await;
    for ((path, answer), (_, none)) in theirs.iter().zip(&nothing) {
        answer.assert_error(404, "not_found");
        assert_eq!(shape(answer, &acme_id), shape(none, missing), "{path}");
    }
    for (path, answer) in every_request_about(&plain, &globex_id).await {
        assert_eq!(answer.status, 404, "{path}");
    }
    // Nothing was changed by them: acme's record and thumbnails are whole.
    let record = acme.get(&format!("/images/{acme_id}")).await.json();
    assert_eq!(
        record["thumbnails"].as_array().unwrap().len(),
        1,
        "{record}"
    );
    assert_eq!(
        acme.get(&format!("/images/{acme_id}/thumbnail"))
            .await
            .status,
        200
    );
    // Acme deletes its own; globex's copy of the same bytes stays whole.
    let deleted = acme
        .send(
            Method::DELETE,
            &format!("/images/{acme_id}"),
            "",
            Vec::new(),
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        globex
            .get(&format!("/images/{globex_id}/thumbnail"))
            .await
            .status,
        200
    );
    let on_demand = globex
        .get(&format!("/images/{globex_id}/thumbnails/48x48"))
        .await;
    assert_eq!(
        on_demand.status, 202,
        "the shared original is kept for globex"
    );

    // The dashboard spans every tenant: operators only.
    globex
        .get("/dashboard/data")
        .await
        .assert_error(403, "forbidden");
}

on_every_backend!(a_tenant_sees_only_its_own_uploads);
