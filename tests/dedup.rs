//! Identical uploads processed once, on every back-end: twenty uploads of one photo at once
//! make one decode, twenty completed records and one stored original; deleting them one by
//! one keeps the original until the last; other variants, or `dedup: false`, are made apart;
//! and SIGKILLs at random points leave no record without its bytes and nothing uncollected.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;
use support::{Backend, Gateway, fixture, slow_png};

/// The value of an unlabelled counter in `/metrics`.
async fn metric(gateway: &Gateway, name: &str) -> u64 {
    let text = String::from_utf8(gateway.get("/metrics").await.body.to_vec()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("thumbnailify_{name}_total ")))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// Whether a record's history says a worker made it.
async fn decoded(gateway: &Gateway, media_id: &str) -> bool {
    let events = gateway
        .get(&format!("/images/{media_id}/events"))
        .await
        .json();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|event| event["event"] == "started")
}

async fn identical_uploads_are_processed_once(backend: Backend) {
    let gateway = Arc::new(Gateway::start(backend, "keep_raw: true\n").await);
    let photo = fixture("jpeg-baseline.jpg");
    let uploads: Vec<_> = (0..20)
        .map(|_| {
            let (gateway, photo) = (Arc::clone(&gateway), photo.clone());
            tokio::spawn(async move { gateway.upload("image/jpeg", &photo).await })
        })
        .collect();
    let mut ids = Vec::new();
    for upload in uploads {
        let answer = upload.await.unwrap();
        assert_eq!(answer.status, 202);
        ids.push(answer.media_id());
    }
    let mut makers = 0;
    let mut thumbnails = Vec::new();
    for id in &ids {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{record}");
        if decoded(&gateway, id).await {
            makers += 1;
            assert!(record.get("duplicate_of").is_none(), "{record}");
        } else {
            assert!(record["duplicate_of"].is_string(), "{record}");
            assert!(
                record["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("deduplicated")
            );
        }
        thumbnails.push(gateway.thumbnail(id).await.body);
    }
    assert_eq!(makers, 1, "one decode for twenty uploads");
    assert!(thumbnails.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(gateway.object_names("raw").len(), 1, "one stored original");
    assert_eq!(gateway.object_names("thumbnails").len(), 20);
    assert_eq!(metric(&gateway, "uploads_deduplicated").await, 19);
    assert_eq!(
        metric(&gateway, "dedup_saved_bytes").await,
        19 * photo.len() as u64
    );
    // Once one is completed, another upload of it is completed at once, without a job.
    let late = gateway.upload("image/jpeg", &photo).await.json();
    assert_eq!(late["state"], "Completed", "{late}");
    assert_eq!(late["thumbnails"][0]["state"], "ready");
    ids.push(late["media_id"].as_str().unwrap().to_owned());
    // Deleting one never removes what another uses; the last takes the original with it.
    for (deleted, id) in ids.iter().enumerate() {
        let answer = gateway
            .request(Method::DELETE, &format!("/images/{id}"), &[], Vec::new())
            .await;
        assert_eq!(answer.status, 204);
        let left = ids.len() - deleted - 1;
        assert_eq!(gateway.object_names("thumbnails").len(), left);
        if left > 0 {
            assert_eq!(gateway.object_names("raw").len(), 1);
            assert_eq!(gateway.thumbnail(&ids[deleted + 1]).await.status, 200);
        }
    }
    assert_eq!(gateway.object_names("raw").len(), 0, "storage is empty");
}

async fn other_variants_are_made_apart_and_share_the_original(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true\n").await;
    let photo = fixture("png-gray-alpha.png");
    let small = gateway.upload("image/png", &photo).await.media_id();
    gateway.wait_final(&small).await;
    let content_type = "image/png";
    let large = gateway
        .request(
            Method::POST,
            "/images?sizes=300x300",
            &[("content-type", content_type)],
            base64(&photo),
        )
        .await
        .media_id();
    let record = gateway.wait_final(&large).await;
    assert_eq!(record["state"], "Completed");
    assert!(
        decoded(&gateway, &large).await,
        "other variants: a job of its own"
    );
    assert_eq!(
        gateway.object_names("raw").len(),
        1,
        "the same bytes: one original"
    );
}

async fn dedup_off_stores_and_makes_each_upload(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true\ndedup: false\n").await;
    let photo = fixture("png-gray-alpha.png");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(gateway.upload("image/png", &photo).await.media_id());
    }
    for id in &ids {
        assert_eq!(gateway.wait_final(id).await["state"], "Completed");
        assert!(decoded(&gateway, id).await);
    }
    let mut raw = gateway.object_names("raw");
    raw.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(raw, expected, "each original under its own id");
}

fn base64(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

async fn an_upload_waiting_for_a_deleted_one_is_made_on_its_own(backend: Backend) {
    let gateway = Gateway::start(backend, "worker: {concurrency: 1}\n").await;
    let slow = slow_png();
    let first = gateway.upload("image/png", &slow).await.media_id();
    let second = gateway.upload("image/png", &slow).await.json();
    assert_eq!(second["duplicate_of"], first.as_str(), "{second}");
    let answer = gateway
        .request(Method::DELETE, &format!("/images/{first}"), &[], Vec::new())
        .await;
    assert_eq!(answer.status, 204);
    let second = second["media_id"].as_str().unwrap();
    let record = gateway.wait_final(second).await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert!(record.get("duplicate_of").is_none(), "{record}");
    assert!(decoded(&gateway, second).await);
}

on_every_backend!(
    an_upload_waiting_for_a_deleted_one_is_made_on_its_own,
    identical_uploads_are_processed_once,
    other_variants_are_made_apart_and_share_the_original,
    dedup_off_stores_and_makes_each_upload,
);

/// SIGKILL at random points while identical uploads come in: every upload answered 202 ends
/// `Completed` with its thumbnail; once all are deleted and the gateway restarts (its orphan
/// sweep), no object is left.
#[tokio::test]
async fn crashes_lose_no_bytes_and_leave_nothing_behind() {
    let mut gateway = Gateway::start(Backend::Embedded, "keep_raw: true\n").await;
    let photos = [fixture("jpeg-baseline.jpg"), fixture("png-gray-alpha.png")];
    let mut accepted: Vec<String> = Vec::new();
    for round in 0..6u64 {
        let shared = Arc::new(gateway);
        let uploads: Vec<_> = (0..8)
            .map(|i| {
                let (gateway, photo) = (Arc::clone(&shared), photos[i % 2].clone());
                let content_type = ["image/jpeg", "image/png"][i % 2];
                tokio::spawn(async move { gateway.try_upload(content_type, &photo).await })
            })
            .collect();
        // A different moment each round: before, during and after the uploads' commits.
        tokio::time::sleep(Duration::from_millis(kill_delay_ms(round))).await;
        let pid = shared.pid().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        assert!(killed.unwrap().success());
        for upload in uploads {
            if let Some(answer) = upload.await.unwrap()
                && answer.status == 202
            {
                accepted.push(answer.media_id());
            }
        }
        gateway = Arc::into_inner(shared).unwrap_or_else(|| unreachable!("the uploads ended"));
        gateway.kill();
        gateway.spawn().await;
        gateway.wait_ready().await;
        // Each job is in flight at one crash at most (at every one, it would be failed as the
        // job that crashes the service).
        for id in &accepted {
            gateway.wait_final(id).await;
        }
    }
    assert!(!accepted.is_empty());
    for id in &accepted {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{record}");
        assert_eq!(gateway.thumbnail(id).await.status, 200, "{record}");
    }
    let listed: Value = gateway.get("/images?limit=1000").await.json();
    for record in listed["items"].as_array().unwrap() {
        let id = record["media_id"].as_str().unwrap();
        let answer = gateway
            .request(Method::DELETE, &format!("/images/{id}"), &[], Vec::new())
            .await;
        assert_eq!(answer.status, 204);
    }
    gateway.kill();
    gateway.spawn().await;
    gateway.wait_ready().await;
    assert_eq!(gateway.object_names("raw"), Vec::<String>::new());
    assert_eq!(gateway.object_names("thumbnails"), Vec::<String>::new());
}

/// A kill delay for `round`: spread over 0–150 ms.
fn kill_delay_ms(round: u64) -> u64 {
    (round * 37 + 11) % 150
}
