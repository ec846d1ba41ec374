//! Load and crashes against real gateway processes: every accepted upload (202) reaches a
//! final state, whatever happens to the process.

mod support;

use std::time::Duration;

use support::{Backend, Gateway, slow_png, wait_gone};

async fn two_hundred_concurrent_uploads_all_complete(backend: Backend) {
    let gateway = std::sync::Arc::new(Gateway::start(backend, "").await);
    let files = [
        "jpeg-baseline.jpg",
        "png-rgb.png",
        "webp-lossy.webp",
        "small.png",
    ];
    let uploads: Vec<_> = (0..200)
        .map(|i| {
            let gateway = std::sync::Arc::clone(&gateway);
            tokio::spawn(async move { gateway.upload_fixture(files[i % files.len()]).await })
        })
        .collect();
    let mut ids = Vec::new();
    for upload in uploads {
        ids.push(upload.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 200, "every upload has its own id");
    for id in &ids {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{record}");
    }
    let page = gateway.get("/images?limit=1000").await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 200);
}

async fn a_crash_loses_no_accepted_upload(backend: Backend) {
    // One worker, so that the crash finds jobs still queued; each upload its own job. A
    // crash between a record's completion and its raw file's removal leaves the raw file to
    // the orphan sweep: here it runs every second, for objects a second old.
    let mut gateway = Gateway::start(
        backend,
        "worker: {concurrency: 1}\ndedup: false\nrecovery: {orphan_sweep_secs: 1, orphan_grace_secs: 1}",
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let name = if i % 2 == 0 {
            "tiff-lzw.tiff"
        } else {
            "png-rgb.png"
        };
        ids.push(gateway.upload_fixture(name).await);
    }
    let last = gateway.get(&format!("/images/{}", ids[29])).await.json();
    assert_eq!(
        last["state"], "Processing",
        "the crash must find work in flight"
    );
    gateway.kill();

    gateway.spawn().await;
    for id in &ids {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{record}");
        assert!(gateway.thumbnail_path(id).exists());
        wait_gone(&gateway.raw_path(id)).await;
    }
    // No temporary file of an interrupted write is left behind.
    for dir in ["raw", "thumbnails"] {
        for name in gateway.object_names(dir) {
            assert!(!name.starts_with(".tmp-"), "{dir}/{name}");
        }
    }
}

async fn sigterm_finishes_in_flight_work_and_exits_cleanly(backend: Backend) {
    let mut gateway = Gateway::start(backend, "worker: {concurrency: 1}").await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(gateway.upload_fixture("tiff-lzw.tiff").await);
    }
    assert!(gateway.terminate(), "exit status 0 after SIGTERM");
    // Whatever was not finished before the exit is finished after the restart.
    gateway.spawn().await;
    for id in &ids {
        assert_eq!(gateway.wait_final(id).await["state"], "Completed");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = String::from_utf8(gateway.get("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "thumbnailify_jobs_processing 0"),
        "{metrics}"
    );
}

/// Embedded: a job whose decode crashes the whole process would crash it at every restart.
/// A job in flight at a crash counts an attempt; after `recovery.max_attempts` it is failed.
#[tokio::test]
async fn a_job_in_flight_at_every_crash_ends_as_an_error() {
    let config = "worker: {concurrency: 1}\nrecovery: {max_attempts: 2}";
    let mut gateway = Gateway::start_with_queue(None, config).await;
    let answer = gateway.upload("image/png", &slow_png()).await;
    assert_eq!(answer.status, 202);
    let id = answer.media_id();
    for crash in 1..=2 {
        let record = gateway
            .wait_record(&id, |record| {
                record["state"] != "Processing" || record["service"] == "worker"
            })
            .await;
        assert_eq!(record["state"], "Processing", "crash {crash}: {record}");
        // Visible at once, durable at the next group commit: let it land.
        tokio::time::sleep(Duration::from_millis(150)).await;
        gateway.kill();
        gateway.spawn().await;
    }
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 500);
    assert_eq!(record["attempts"], 2);
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("stopped while processing")
    );
    let other = gateway.upload_fixture("small.png").await;
    assert_eq!(gateway.wait_final(&other).await["state"], "Completed");
}

async fn a_restart_removes_the_temporary_files_a_crash_left(backend: Backend) {
    let mut gateway = Gateway::start(backend, "").await;
    let raw = gateway.data_dir.join("raw/.tmp-crashed");
    let thumbnail = gateway.data_dir.join("thumbnails/.tmp-crashed");
    gateway.kill();
    std::fs::write(&raw, b"half a file").unwrap();
    std::fs::write(&thumbnail, b"half a file").unwrap();
    gateway.spawn().await;
    assert!(!raw.exists(), "the gateway alone writes raw files");
    // With the embedded queue the crashed process was the only writer of thumbnails; with
    // RabbitMQ a worker elsewhere may be writing this very file.
    assert_eq!(
        thumbnail.exists(),
        backend.is_rabbitmq(),
        "temporary thumbnail after a restart on {backend:?}"
    );
}

on_every_backend!(
    two_hundred_concurrent_uploads_all_complete,
    a_crash_loses_no_accepted_upload,
    sigterm_finishes_in_flight_work_and_exits_cleanly,
);

/// On the back-ends whose media live in the data directory: with media in S3 an object
/// appears whole or not at all, and there are no temporary files.
mod temporary_files {
    use super::a_restart_removes_the_temporary_files_a_crash_left as test;
    use super::support::Backend;

    #[tokio::test]
    async fn embedded() {
        test(Backend::Embedded).await;
    }

    #[tokio::test]
    async fn rabbitmq() {
        test(Backend::RabbitMq).await;
    }
}
