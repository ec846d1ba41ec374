//! Who may use the API, end to end against a real gateway.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use sha2::{Digest, Sha256};
use support::{Gateway, fixture};

#[tokio::test]
async fn with_api_keys_every_endpoint_but_healthz_needs_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.sha256");
    let hashed_key = "key-from-the-file";
    let digest: String = Sha256::digest(hashed_key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&file, format!("# one digest per line\n{digest}\n")).unwrap();
    let config = format!(
        "auth: {{api_keys: [key-in-config], api_keys_file: '{}'}}",
        file.display()
    );
    let gateway = Gateway::start_with_queue(None, &config).await;

    assert_eq!(gateway.get("/healthz").await.status, 200);
    for path in ["/readyz", "/metrics", "/images", "/nowhere"] {
        let answer = gateway.get(path).await;
        answer.assert_error(401, "unauthorized");
        assert_eq!(answer.header("www-authenticate").as_deref(), Some("Bearer"));
    }
    let body = STANDARD.encode(fixture("small.png"));
    for authorization in [
        "Bearer wrong",
        "Basic a2V5LWluLWNvbmZpZw==",
        "key-in-config",
        "Bearer",
    ] {
        gateway
            .request(
                Method::POST,
                "/images",
                &[
                    ("content-type", "image/png"),
                    ("authorization", authorization),
                ],
                body.clone(),
            )
            .await
            .assert_error(401, "unauthorized");
    }
    assert_eq!(
        gateway.get("/images").await.status,
        401,
        "nothing was accepted without a key"
    );

    for key in ["key-in-config", hashed_key] {
        let bearer = format!("Bearer {key}");
        let answer = gateway
            .request(
                Method::POST,
                "/images",
                &[("content-type", "image/png"), ("authorization", &bearer)],
                body.clone(),
            )
            .await;
        assert_eq!(answer.status, 202, "{key}");
        let id = answer.json()["media_id"].as_str().unwrap().to_owned();
        let record = gateway
            .request(
                Method::GET,
                &format!("/images/{id}"),
                &[("authorization", &bearer)],
                "",
            )
            .await;
        assert_eq!(record.status, 200);
    }
}
