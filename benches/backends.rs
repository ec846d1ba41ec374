//! The price of scaling out: what one upload costs on each back-end.
//!
//! `cargo bench --bench backends` (scripts/bench runs it) measures, on this machine:
//! - the record store: inserting a record with its outbox job, made durable (SQLite and
//!   PostgreSQL: one committed transaction each), one at a time and 16 at once;
//! - media storage: writing a 100 KB raw upload, made durable (the data directory: temp file,
//!   fsync, rename, directory fsync; S3: one PUT to s3s-fs on loopback, itself writing a file),
//!   one at a time and 16 at once.
//!
//! PostgreSQL is the one `THUMBNAILIFY_TEST_DATABASE_URL` names (default
//! `postgres://root:root@127.0.0.1:5432/test`), in a fresh schema; s3s-fs must be on the PATH.
//! Prints a Markdown table.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::config::{S3Config, StoreConfig};
use common::media::MediaType;
use common::message::Job;
use common::record::{NewUpload, Record};
use common::storage::{DirStorage, Key, S3Storage, Storage};
use gateway::store::Store;
use uuid::Uuid;

/// Operations per measurement.
const OPERATIONS: usize = 400;
/// Operations at once in the concurrent measurement.
const CONCURRENCY: usize = 16;

fn record() -> (Record, Job) {
    let record = Record::new(NewUpload {
        media_id: Uuid::now_v7(),
        media_type: Some(MediaType::Jpeg),
        name: Some("photo.jpg".to_owned()),
        size: 100_000,
        md5: "0".repeat(32),
        sha256: "0".repeat(64),
        dimensions: Some((4000, 3000)),
        variants: vec![common::variant::Variant::default_for(
            &common::config::ThumbnailConfig::default(),
        )],
        callback_url: None,
        notify_email: None,
    });
    let job = record.job();
    (record, job)
}

/// Runs `operation` [`OPERATIONS`] times, `concurrency` at once; returns the median latency
/// and the throughput.
async fn measure<F, Fut>(concurrency: usize, operation: F) -> (Duration, f64)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let operation = Arc::new(operation);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let operation = Arc::clone(&operation);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..OPERATIONS / concurrency {
                let one = Instant::now();
                operation().await;
                latencies.push(one.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (
        latencies[latencies.len() / 2],
        latencies.len() as f64 / elapsed.as_secs_f64(),
    )
}

async fn row(
    what: &str,
    operation: impl Fn() -> Box<dyn Future<Output = ()> + Send + Unpin> + Send + Sync + 'static,
) {
    let operation = Arc::new(operation);
    let one = Arc::clone(&operation);
    let (alone, _) = measure(1, move || one()).await;
    let many = Arc::clone(&operation);
    let (median, throughput) = measure(CONCURRENCY, move || many()).await;
    println!(
        "| {what} | {:.2} | {:.2} | {throughput:.0} |",
        alone.as_secs_f64() * 1000.0,
        median.as_secs_f64() * 1000.0
    );
}

fn database_url() -> String {
    std::env::var("THUMBNAILIFY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root:root@127.0.0.1:5432/test".to_owned())
}

fn psql(sql: &str) {
    let status = Command::new("psql")
        .arg(database_url())
        .args(["-qc", sql])
        .status()
        .expect("psql");
    assert!(status.success(), "{sql}");
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("bench_{}", Uuid::now_v7().simple());
    psql(&format!("CREATE SCHEMA {schema}"));
    let s3_root = tempfile::tempdir().unwrap();
    std::fs::create_dir(s3_root.path().join("bench")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s3s = Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "bench", "--secret-key", "bench-secret"])
        .arg(s3_root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs on the PATH");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    println!("backends: {OPERATIONS} operations, alone and {CONCURRENCY} at once");
    println!(
        "| operation | ms alone (median) | ms with {CONCURRENCY} at once (median) | per second with {CONCURRENCY} at once |"
    );
    println!("|---|---|---|---|");

    let data = common::files::DataDir::new(dir.path().join("store"));
    let sqlite = Store::open(&StoreConfig::default(), &data).await.unwrap();
    let separator = if database_url().contains('?') {
        '&'
    } else {
        '?'
    };
    let postgres = Store::open(
        &StoreConfig {
            url: Some(format!(
                "{}{separator}options=-c%20search_path%3D{schema}",
                database_url()
            )),
            max_connections: CONCURRENCY as u32,
            ..StoreConfig::default()
        },
        &data,
    )
    .await
    .unwrap();
    for (what, store) in [
        (
            "record + outbox job, SQLite (one committed transaction, group-committed log fsync)",
            sqlite,
        ),
        (
            "record + outbox job, PostgreSQL (one committed transaction)",
            postgres,
        ),
    ] {
        row(what, move || {
            let store = store.clone();
            Box::new(Box::pin(async move {
                let (record, job) = record();
                store.insert(&record, &job).await.unwrap();
            }))
        })
        .await;
    }

    let payload = Bytes::from(vec![0x5a; 100_000]);
    let directory = Storage::Dir(DirStorage::create(&dir.path().join("data")).unwrap());
    let s3 = Storage::S3(
        S3Storage::new(
            "s3://bench",
            &S3Config {
                endpoint: Some(format!("http://127.0.0.1:{port}")),
                region: Some("us-east-1".into()),
                access_key_id: Some("bench".into()),
                secret_access_key: Some("bench-secret".into()),
                allow_http: true,
                ..S3Config::default()
            },
        )
        .unwrap(),
    );
    for (what, storage) in [
        (
            "100 KB raw upload, data directory (temp file, fsync, rename)",
            directory,
        ),
        ("100 KB raw upload, S3 (one PUT to s3s-fs on loopback)", s3),
    ] {
        let payload = payload.clone();
        row(what, move || {
            let (storage, payload) = (storage.clone(), payload.clone());
            Box::new(Box::pin(async move {
                storage
                    .put(Key::raw(Uuid::now_v7()), payload)
                    .await
                    .unwrap();
            }))
        })
        .await;
    }

    let _ = s3s.kill();
    let _ = s3s.wait();
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}
