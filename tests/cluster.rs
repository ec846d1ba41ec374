//! The fleet, end to end: two gateways and two workers as separate processes sharing only
//! RabbitMQ (one vhost), PostgreSQL (one schema) and S3 (one bucket on a real S3 server), with
//! no directory in common. A client uploads to both gateways and reads each record and
//! thumbnail from the other, while a gateway is SIGKILLed, a worker is SIGKILLed, the S3
//! server restarts and RabbitMQ stops and starts.
//!
//! | check | how |
//! |---|---|
//! | any gateway answers for any record | every record read, and every thumbnail fetched, from the gateway that did not take the upload, and from both at the end |
//! | every 202 ends `Completed` | 300 uploads, retried on the other gateway when one is down or answers 503 |
//! | no duplicate thumbnail | exactly one thumbnail object per accepted upload |
//! | no orphan | no raw object left once every job is final (the orphan sweep runs every second past a 2 s grace) |
//! | no process has a data directory | the gateways' and workers' data directory never exists |
//!
//! Beside it: every combination of record store and media storage (sled or PostgreSQL, the
//! data directory or S3) serves across a restart, a database outage answers 503 and heals by
//! itself, and presigned thumbnail URLs (`media.presign`) serve the same bytes from S3.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::{Backend, Gateway, fixture, media_type_of, rabbitmqctl};

/// Uploads at first to `first`, and on a refused connection or a 503 to `second`, until one
/// takes it; returns the media id and which gateway took it (0 or 1).
async fn upload_somewhere(
    gateways: [&Gateway; 2],
    first: usize,
    name: &str,
    bytes: &[u8],
) -> (String, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at = first;
    loop {
        if let Some(answer) = gateways[at].try_upload(media_type_of(name), bytes).await {
            match answer.status.as_u16() {
                202 => return (answer.media_id(), at),
                503 => {}
                other => panic!("{name}: {other} {:?}", answer.body),
            }
        }
        assert!(Instant::now() < deadline, "no gateway took {name}");
        at = 1 - at;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_loses_nothing_through_crashes_and_outages() {
    let yaml = "recovery: {orphan_sweep_secs: 1, orphan_grace_secs: 2}";
    let mut a = Gateway::start(Backend::Distributed, yaml).await;
    let mut b = a.join(yaml).await;
    let names = [
        "png-rgb.png",
        "jpeg-baseline.jpg",
        "gif-animated.gif",
        "webp-lossy.webp",
    ];
    let files: Vec<Vec<u8>> = names.iter().map(|name| fixture(name)).collect();

    let mut accepted: Vec<(String, usize)> = Vec::new();
    for i in 0..300 {
        match i {
            60 => {
                a.kill();
                a.spawn().await;
            }
            120 => {
                a.kill_worker(0);
                a.start_worker();
            }
            180 => {
                let s3 = a.s3.as_mut().unwrap();
                s3.kill();
                s3.spawn().await;
            }
            240 => {
                rabbitmqctl(&["stop_app"]);
                rabbitmqctl(&["start_app"]);
                rabbitmqctl(&["await_startup"]);
            }
            _ => {}
        }
        let name = names[i % names.len()];
        let (id, at) = upload_somewhere([&a, &b], i % 2, name, &files[i % names.len()]).await;
        // The other gateway knows the record at once: the store is shared.
        let other = [&a, &b][1 - at];
        if let Some(answer) = other.try_get(&format!("/images/{id}")).await {
            assert_eq!(answer.status, 200, "{id} from the other gateway");
        }
        accepted.push((id, at));
    }

    for (id, at) in &accepted {
        let record = [&a, &b][1 - *at].wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{record}");
        for gateway in [&a, &b] {
            assert_eq!(gateway.thumbnail(id).await.status, 200, "{id}");
        }
    }
    let ids: HashSet<&String> = accepted.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 300);
    // One thumbnail object per upload, and no raw object once the orphan sweep has run.
    let thumbnails: HashSet<String> = a.object_names("thumbnails").into_iter().collect();
    assert_eq!(thumbnails.len(), 300);
    assert!(accepted.iter().all(|(id, _)| thumbnails.contains(id)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.object_names("raw").is_empty() {
        assert!(
            Instant::now() < deadline,
            "raw objects left: {:?}",
            a.object_names("raw")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !a.data_dir.exists() && !b.data_dir.exists(),
        "a data directory appeared"
    );
    b.terminate();
}

#[tokio::test]
async fn a_database_outage_answers_503_and_heals_by_itself() {
    let database = support::Database::create();
    let gateway = Gateway::start_with_store(database.url(), "").await;
    let before = gateway.upload_fixture("png-rgb.png").await;

    database.allow_connections(false);
    let png = fixture("small.png");
    for _ in 0..5 {
        let answer = gateway.upload("image/png", &png).await;
        answer.assert_error(503, "store_unavailable");
        assert_eq!(answer.header("retry-after").as_deref(), Some("5"));
    }
    gateway
        .get(&format!("/images/{before}"))
        .await
        .assert_error(503, "store_unavailable");
    assert_eq!(gateway.get("/readyz").await.status, 503);

    database.allow_connections(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let answer = gateway.upload("image/png", &png).await;
        if answer.status == 202 {
            break answer.media_id();
        }
        answer.assert_error(503, "store_unavailable");
        assert!(Instant::now() < deadline, "the gateway did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for id in [before, after] {
        assert_eq!(gateway.wait_final(&id).await["state"], "Completed", "{id}");
    }
}

#[tokio::test]
async fn presigned_thumbnails_redirect_to_s3_and_serve_the_same_bytes() {
    let gateway = Gateway::start(Backend::Distributed, "media: {presign: true}").await;
    let id = gateway.upload_fixture("jpeg-baseline.jpg").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    let path = format!("/images/{id}/thumbnail");
    let redirect = gateway
        .request(hyper::Method::GET, &path, &[("accept", "image/*")], "")
        .await;
    assert_eq!(redirect.status, 307);
    let location = redirect.header("location").unwrap();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    // The presigned URL serves the thumbnail to anyone holding it.
    let rest = location.strip_prefix("http://").unwrap();
    let (host, target) = rest.split_at(rest.find('/').unwrap());
    let answer = support::raw_exchange(
        host.to_owned(),
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes(),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let stored = std::fs::read(gateway.thumbnail_path(&id)).unwrap();
    assert!(answer.0.ends_with(&stored));
    // Base64, the default, still comes through the gateway.
    let base64 = gateway.get(&path).await;
    assert_eq!(base64.status, 200);
    assert_eq!(base64.header("content-type").as_deref(), Some("image/jpeg"));
}

#[tokio::test]
async fn every_combination_of_store_and_media_works() {
    for (postgres, s3) in [(false, false), (false, true), (true, false), (true, true)] {
        let topology = support::Topology {
            rabbitmq: true,
            postgres,
            s3,
        };
        let mut gateway = Gateway::start_topology(topology, "").await;
        let ids = [
            gateway.upload_fixture("png-rgba.png").await,
            gateway.upload_fixture("jpeg-baseline.jpg").await,
        ];
        for id in &ids {
            let record = gateway.wait_final(id).await;
            assert_eq!(record["state"], "Completed", "{topology:?}: {record}");
        }
        // A restarted gateway finds everything where it was.
        assert!(gateway.terminate(), "{topology:?}");
        gateway.spawn().await;
        gateway.wait_ready().await;
        let ready = gateway.get("/readyz").await.json();
        assert_eq!(ready["store"], if postgres { "postgres" } else { "sled" });
        assert_eq!(ready["storage"], if s3 { "s3" } else { "dir" });
        for id in &ids {
            assert_eq!(gateway.thumbnail(id).await.status, 200, "{topology:?}");
        }
        let delete = gateway
            .request(
                hyper::Method::DELETE,
                &format!("/images/{}", ids[0]),
                &[],
                "",
            )
            .await;
        assert_eq!(delete.status, 204);
        assert!(!gateway.thumbnail_path(&ids[0]).exists(), "{topology:?}");
        assert!(gateway.thumbnail_path(&ids[1]).exists(), "{topology:?}");
    }
}
