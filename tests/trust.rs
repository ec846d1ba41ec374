//! Trust, end to end against a real gateway: who may use the API, and the limits that keep
//! memory and disk bounded under any load (in-flight uploads, queued jobs, free disk).

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use sha2::{Digest, Sha256};
use support::disk::{Tmpfs, run_gateway_to_exit};
use support::{Gateway, fixture};

#[tokio::test]
async fn with_api_keys_every_endpoint_but_healthz_and_the_contract_needs_one() {
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
    // The contract and its page describe the API, not its data.
    for path in ["/openapi.json", "/docs/", "/docs/swagger-ui.css"] {
        assert_eq!(gateway.get(path).await.status, 200, "{path}");
    }
    for path in [
        "/readyz",
        "/metrics",
        "/images",
        "/nowhere",
        "/docsx",
        "/openapi.jsonx",
    ] {
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
        let id = answer.media_id();
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

#[tokio::test]
async fn a_full_disk_refuses_uploads_cleanly_and_keeps_what_was_accepted() {
    let disk = Tmpfs::mount("12m");
    let gateway = Gateway::start_in(
        disk.dir.path().join("data"),
        // Each upload stored apart, so that the same bytes fill the disk.
        "limits: {min_free_disk_bytes: 4194304}\nkeep_raw: true\ndedup: false",
    )
    .await;
    let mut accepted = Vec::new();
    let refusal = loop {
        let answer = gateway.upload("image/png", &fixture("png-rgb.png")).await;
        match answer.status.as_u16() {
            202 => accepted.push(answer.media_id()),
            _ => break answer,
        }
        assert!(accepted.len() < 100, "the disk never filled");
    };
    refusal.assert_error(507, "insufficient_storage");
    assert!(!accepted.is_empty());
    for id in &accepted {
        assert_eq!(gateway.wait_final(id).await["state"], "Completed", "{id}");
        assert_eq!(gateway.thumbnail(id).await.status, 200);
    }
    for dir in ["raw", "thumbnails"] {
        for entry in std::fs::read_dir(gateway.data_dir.join(dir)).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".tmp-"),
                "half-written {name:?}"
            );
        }
    }
    // Deleting makes room again.
    for id in &accepted {
        let answer = gateway
            .request(Method::DELETE, &format!("/images/{id}"), &[], "")
            .await;
        assert_eq!(answer.status, 204);
    }
    let answer = gateway.upload("image/png", &fixture("small.png")).await;
    assert_eq!(answer.status, 202, "{:?}", answer.body);
    drop(gateway);
}

#[tokio::test]
async fn past_the_in_flight_cap_uploads_are_told_to_retry() {
    use tokio::io::AsyncWriteExt;
    let gateway = Gateway::start_with_queue(None, "limits: {max_inflight_uploads: 1}").await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    // One upload holds the only place while its body trickles in.
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\niVBOR")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = gateway.upload("image/png", &fixture("small.png")).await;
    answer.assert_error(503, "overloaded");
    assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
    drop(slow);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        gateway
            .upload("image/png", &fixture("small.png"))
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn past_the_queue_cap_uploads_are_told_to_retry() {
    let gateway = Gateway::start_with_queue(
        None,
        "limits: {max_queued_jobs: 2}\nworker: {concurrency: 1}",
    )
    .await;
    let slow = support::slow_png();
    let first = gateway.upload("image/png", &slow).await;
    let second = gateway.upload("image/png", &slow).await;
    assert_eq!((first.status.as_u16(), second.status.as_u16()), (202, 202));
    let answer = gateway.upload("image/png", &fixture("small.png")).await;
    answer.assert_error(503, "queue_full");
    assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    for answer in [first, second] {
        let id = answer.media_id();
        gateway.wait_final(&id).await;
    }
    assert_eq!(
        gateway
            .upload("image/png", &fixture("small.png"))
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn a_client_over_its_upload_rate_is_told_when_to_retry() {
    let gateway =
        Gateway::start_with_queue(None, "limits: {uploads_per_client_per_second: 1}").await;
    let small = fixture("small.png");
    // A burst of two is allowed, the third is not.
    assert_eq!(gateway.upload("image/png", &small).await.status, 202);
    assert_eq!(gateway.upload("image/png", &small).await.status, 202);
    let answer = gateway.upload("image/png", &small).await;
    answer.assert_error(429, "rate_limited");
    let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Other endpoints are not limited.
    assert_eq!(gateway.get("/images").await.status, 200);
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(gateway.upload("image/png", &small).await.status, 202);
}

#[tokio::test]
async fn a_second_gateway_on_the_same_data_directory_is_told_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _first = Gateway::start_in(data.clone(), "").await;
    let (status, log) = run_gateway_to_exit(&[
        ("THUMBNAILIFY_LISTEN", "127.0.0.1:0"),
        ("THUMBNAILIFY_DATA_DIR", data.to_str().unwrap()),
    ]);
    assert!(!status.success());
    assert!(log.contains("in use by another gateway"), "{log}");
    let lock = data.join("records.sqlite3.lock");
    assert!(log.contains(lock.to_str().unwrap()), "{log}");
}

#[test]
fn start_up_failures_name_what_failed_in_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    // A port already in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let (status, log) = run_gateway_to_exit(&[
        ("THUMBNAILIFY_LISTEN", &address),
        ("THUMBNAILIFY_DATA_DIR", data),
    ]);
    assert!(!status.success());
    assert!(
        log.contains(&format!("cannot listen on {address}")),
        "{log}"
    );
    // Logs to a pipe carry no colour codes.
    assert!(!log.contains('\u{1b}'), "{log:?}");

    // A data directory that cannot be created: its parent is a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let below_a_file = file.join("data");
    let below_a_file = below_a_file.to_str().unwrap();
    let (status, log) = run_gateway_to_exit(&[
        ("THUMBNAILIFY_LISTEN", "127.0.0.1:0"),
        ("THUMBNAILIFY_DATA_DIR", below_a_file),
    ]);
    assert!(!status.success());
    assert!(
        log.contains(&format!("cannot use the data directory {below_a_file}")),
        "{log}"
    );
}
