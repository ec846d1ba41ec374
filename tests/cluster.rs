//! Topologies, end to end: every combination of record store and media storage (SQLite or
//! PostgreSQL, the data directory or S3) serves across a restart; a database outage answers
//! 503 and heals by itself; presigned thumbnail URLs (`media.presign`) serve the same bytes
//! from S3. The fleet itself, two gateways and two workers through crashes and outages, is in
//! `fleet.rs`.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, Gateway, fixture};

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
    // Readiness is checked in the background every second: it says so within a few.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateway.get("/readyz").await.status != 503 {
        assert!(
            Instant::now() < deadline,
            "readyz stayed ready without its database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
        assert_eq!(ready["store"], if postgres { "postgres" } else { "sqlite" });
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

/// Writes an object nobody's record points at, as a crash between an object and its record
/// leaves one; returns its path.
fn plant_orphan(gateway: &Gateway, folder: &str) -> std::path::PathBuf {
    let dir = gateway.media_dir().join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(uuid::Uuid::now_v7().to_string());
    std::fs::write(&path, b"left by a crash").unwrap();
    path
}

#[tokio::test]
async fn objects_no_record_needs_are_swept() {
    // The only writer (embedded queue, SQLite, the data directory): swept at the restart, however
    // young.
    let mut alone = Gateway::start(Backend::Embedded, "").await;
    let kept = alone.upload_fixture("png-rgb.png").await;
    alone.wait_final(&kept).await;
    alone.kill();
    let orphans = [
        plant_orphan(&alone, "raw"),
        plant_orphan(&alone, "thumbnails"),
    ];
    alone.spawn().await;
    for orphan in &orphans {
        assert!(!orphan.exists(), "{}", orphan.display());
    }
    assert!(alone.thumbnail_path(&kept).exists());

    // A fleet (PostgreSQL and S3): swept while serving, once older than the grace period.
    let yaml = "recovery: {orphan_sweep_secs: 1, orphan_grace_secs: 3}";
    let fleet = Gateway::start(Backend::Distributed, yaml).await;
    let kept = fleet.upload_fixture("png-rgb.png").await;
    fleet.wait_final(&kept).await;
    let planted = Instant::now();
    let orphans = [
        plant_orphan(&fleet, "raw"),
        plant_orphan(&fleet, "thumbnails"),
    ];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        orphans.iter().all(|orphan| orphan.exists()),
        "swept within the grace period"
    );
    for orphan in &orphans {
        support::wait_gone(orphan).await;
    }
    assert!(planted.elapsed() >= Duration::from_secs(3));
    assert!(fleet.thumbnail_path(&kept).exists());
    assert_eq!(fleet.thumbnail(&kept).await.status, 200);
}

#[tokio::test]
async fn a_waiter_on_one_gateway_hears_of_a_result_another_applied() {
    // Two gateways sharing PostgreSQL, S3 and RabbitMQ: each result is applied by whichever
    // gateway takes it from the results queue, so about half the time by the other one. Its
    // NOTIFY wakes the waiter here at once; without it the waiter would read the record again
    // only after up to 2 s.
    let a = Gateway::start(Backend::Distributed, "").await;
    let b = a.join("").await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let media_id = a.upload("image/png", &support::slow_png()).await.media_id();
        // A waiter on each gateway: whichever applies the result, the other hears of it.
        let path = format!("/images/{media_id}?wait=30");
        let (on_a, on_b) = tokio::join!(waited(&a, &path), waited(&b, &path));
        for (record, answered) in [on_a, on_b] {
            assert_eq!(record["state"], "Completed", "{record}");
            let completed =
                humantime::parse_rfc3339(record["updated_at"].as_str().unwrap()).unwrap();
            slowest = slowest.max(answered.duration_since(completed).unwrap_or_default());
        }
    }
    assert!(
        slowest < Duration::from_millis(500),
        "the slowest waiter answered {slowest:?} after its record became final"
    );
}

/// `GET path` on `gateway`: the record, and when it came.
async fn waited(gateway: &Gateway, path: &str) -> (serde_json::Value, std::time::SystemTime) {
    let answer = gateway.get(path).await;
    (answer.json(), std::time::SystemTime::now())
}
