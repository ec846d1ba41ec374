//! `gateway migrate`, end to end: a service that started on one machine (SQLite and the data
//! directory) moves to PostgreSQL and S3 with every record and object, verified, and a second
//! run finds nothing left to do.

mod support;

use support::{Gateway, S3Server, Schema, fixture, original_name};

/// Runs `gateway migrate --from from --to to`; returns whether it succeeded and what it
/// printed.
fn migrate(from: &std::path::Path, to: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("migrate")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

#[tokio::test]
async fn embedded_records_and_media_move_to_postgres_and_s3() {
    let mut source = Gateway::start_with_queue(None, "keep_raw: true").await;
    let mut ids = Vec::new();
    for name in [
        "png-rgb.png",
        "jpeg-baseline.jpg",
        "gif-animated.gif",
        "webp-alpha.webp",
    ] {
        ids.push(source.upload_fixture(name).await);
    }
    // A record that failed, and one whose raw upload is gone: both move as they are.
    let failed = source
        .upload("image/png", b"\x89PNG\r\n\x1a\n broken")
        .await
        .media_id();
    ids.push(failed.clone());
    for id in &ids {
        source.wait_final(id).await;
    }
    std::fs::remove_file(source.original_path(&fixture("png-rgb.png"))).unwrap();
    let records = records_of(&source, &ids).await;
    let thumbnails: Vec<Vec<u8>> = ids[..4]
        .iter()
        .map(|id| std::fs::read(source.thumbnail_path(id)).unwrap())
        .collect();
    assert!(source.terminate());

    let (schema, s3) = (Schema::create(), S3Server::start().await);
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("from.yaml"), dir.path().join("to.yaml"));
    std::fs::write(
        &from,
        format!("data_dir: '{}'\n", source.data_dir.display()),
    )
    .unwrap();
    std::fs::write(
        &to,
        format!("store: {{url: '{}'}}\n{}\n", schema.url(), s3.yaml()),
    )
    .unwrap();

    let (ok, printed) = migrate(&from, &to);
    assert!(ok, "{printed}");
    assert!(
        printed.contains("copied 5, already there 0, raw uploads absent at the source 1, failed 0"),
        "{printed}"
    );
    let (ok, printed) = migrate(&from, &to);
    assert!(ok, "{printed}");
    assert!(printed.contains("copied 0, already there 5"), "{printed}");

    // The objects are in the bucket, byte for byte.
    for (id, thumbnail) in ids.iter().zip(&thumbnails) {
        let copied = std::fs::read(s3.bucket_dir().join("thumbnails").join(id)).unwrap();
        assert!(copied == *thumbnail, "{id}");
    }
    let raw = s3.bucket_dir().join("raw");
    assert!(!raw.join(original_name(&fixture("png-rgb.png"))).exists());
    assert!(
        raw.join(original_name(&fixture("jpeg-baseline.jpg")))
            .exists()
    );

    // A gateway on the new back-ends serves every record and thumbnail as before.
    let target = Gateway::start_on(schema, s3, "keep_raw: true").await;
    for (id, record) in ids.iter().zip(&records) {
        let answer = target.get(&format!("/images/{id}")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.json(), record);
    }
    for id in &ids[..4] {
        assert_eq!(target.thumbnail(id).await.status, 200, "{id}");
    }
    target
        .thumbnail(&failed)
        .await
        .assert_error(422, "job_failed");
}

/// Every record of `ids` as the gateway answers it.
async fn records_of(gateway: &Gateway, ids: &[String]) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for id in ids {
        records.push(gateway.get(&format!("/images/{id}")).await.json());
    }
    records
}
