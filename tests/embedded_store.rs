//! The embedded store (SQLite in the data directory) end to end, through the gateway binary:
//! a damaged file stops the gateway with the way to recover, never emptied; the disk under
//! the store filling answers 507 and loses no accepted upload; `gateway backup` while the
//! gateway runs, and the backup restored; a data directory from before SQLite (records in
//! sled) imported at start, across crashes of the import.
//! (Ownership by one gateway: `trust.rs`; the same store tests as PostgreSQL: the gateway
//! crate's `store::tests`.)

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::disk::{Tmpfs, run_gateway_to_exit};
use support::{Gateway, fixture, free_port};

/// The gateway binary with its data in `data` on a free port, logging at info to `log`.
fn gateway_command(data: &Path, log: &Path) -> (Command, u16) {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .env_remove("THUMBNAILIFY_QUEUE_URL")
        .env_remove("THUMBNAILIFY_STORE_URL")
        .env_remove("DATABASE_URL")
        .env("THUMBNAILIFY_DATA_DIR", data)
        .env("THUMBNAILIFY_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        );
    (command, port)
}

/// The data directory a sled-era gateway wrote (`tests/fixtures/make_sled_store.py`),
/// unpacked into `dir`; and what its API answered for each record.
fn unpack_sled_era(dir: &Path) -> (PathBuf, Value) {
    let fixtures = support::fixtures_dir();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(fixtures.join("sled-store.tar.gz"))
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
    let expected = serde_json::from_slice(&fixture("sled-store.json")).unwrap();
    (dir.join("data"), expected)
}

#[tokio::test]
async fn a_damaged_store_stops_the_gateway_naming_the_file_and_the_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut gateway = Gateway::start_in(data.clone(), "").await;
    for name in [
        "png-rgb.png",
        "jpeg-baseline.jpg",
        "webp-lossy.webp",
        "gif-animated.gif",
    ] {
        let id = gateway.upload_fixture(name).await;
        gateway.wait_final(&id).await;
    }
    assert!(gateway.terminate(), "the gateway did not stop on SIGTERM");
    let file = data.join("records.sqlite3");
    let whole = std::fs::read(&file).unwrap();

    for damaged in [&whole[..whole.len() / 2], &whole[..100], &[][..]] {
        std::fs::write(&file, damaged).unwrap();
        let (status, log) = run_gateway_to_exit(&[
            ("THUMBNAILIFY_LISTEN", "127.0.0.1:0"),
            ("THUMBNAILIFY_DATA_DIR", data.to_str().unwrap()),
        ]);
        assert!(!status.success());
        assert!(log.contains("is damaged"), "{log}");
        assert!(log.contains(file.to_str().unwrap()), "{log}");
        assert!(log.contains(".recover"), "{log}");
        assert!(log.contains("gateway backup"), "{log}");
        // Left as it was found: never replaced by an empty store.
        assert_eq!(std::fs::read(&file).unwrap(), damaged);
    }
}

#[tokio::test]
async fn the_disk_under_the_store_filling_answers_507_and_loses_no_accepted_upload() {
    let disk = Tmpfs::mount("4m");
    let file = disk.dir.path().join("records.sqlite3");
    let gateway =
        Gateway::start_with_store(format!("sqlite://{}", file.display()), "dedup: false").await;
    // The store's disk filled but for a little.
    let filler = disk.dir.path().join("filler");
    {
        use std::io::Write;
        let mut out = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        while out.write_all(&chunk).is_ok() {}
        let full = out.metadata().unwrap().len();
        out.set_len(full.saturating_sub(256 * 1024)).unwrap();
    }

    let small = fixture("small.png");
    let mut accepted = Vec::new();
    let refusal = loop {
        let answer = gateway.upload("image/png", &small).await;
        match answer.status.as_u16() {
            202 => accepted.push(answer.media_id()),
            _ => break answer,
        }
        assert!(accepted.len() < 5000, "the store's disk never filled");
    };
    refusal.assert_error(507, "insufficient_storage");
    assert!(refusal.header("retry-after").is_some());
    // Room again: every upload answered 202 becomes final, and uploads are taken again.
    std::fs::remove_file(&filler).unwrap();
    for id in &accepted {
        assert_eq!(gateway.wait_final(id).await["state"], "Completed", "{id}");
    }
    assert_eq!(gateway.upload("image/png", &small).await.status, 202);
}

#[tokio::test]
async fn a_backup_made_while_the_gateway_runs_restores_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut gateway = Gateway::start_in(data.clone(), "").await;
    let mut before = Vec::new();
    for name in ["png-rgb.png", "jpeg-baseline.jpg", "webp-lossy.webp"] {
        let id = gateway.upload_fixture(name).await;
        before.push((id.clone(), gateway.wait_final(&id).await));
    }
    // Uploads go on while the backup is made.
    let backup = dir.path().join("backup.sqlite3");
    let backing_up = {
        let (data, backup) = (data.clone(), backup.clone());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_gateway"))
                .arg("backup")
                .arg(&backup)
                .env("THUMBNAILIFY_DATA_DIR", &data)
                .env_remove("THUMBNAILIFY_STORE_URL")
                .env_remove("DATABASE_URL")
                .output()
                .unwrap()
        })
    };
    let small = fixture("small.png");
    for _ in 0..20 {
        assert_eq!(gateway.upload("image/png", &small).await.status, 202);
    }
    let output = backing_up.await.unwrap();
    let (status, log) = (output.status, String::from_utf8_lossy(&output.stderr));
    assert!(status.success(), "{log}");
    // Over an existing file it refuses.
    let again = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("backup")
        .arg(&backup)
        .env("THUMBNAILIFY_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(gateway.terminate());

    // Restored as the README says: the store's files out, the backup in, the gateway started.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("records.sqlite3{suffix}")));
    }
    std::fs::copy(&backup, data.join("records.sqlite3")).unwrap();
    let gateway = Gateway::start_in(data.clone(), "").await;
    for (id, record) in &before {
        let restored = gateway.get(&format!("/images/{id}")).await.json();
        assert_eq!(restored, *record, "{id}");
        assert_eq!(gateway.thumbnail(id).await.status, 200, "{id}");
    }
}

#[tokio::test]
async fn a_sled_era_data_directory_is_imported_at_start_across_crashes_and_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (data, expected) = unpack_sled_era(dir.path());
    let log = dir.path().join("gateway.log");

    // Starts killed (SIGKILL) at moments through the import: each leaves either the sled
    // store whole and no SQLite file, or the import done.
    for delay_ms in [0_u64, 10, 25, 50, 100, 200] {
        let (mut command, _) = gateway_command(&data, &log);
        let mut child = command.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        let sled = data.join("db").exists();
        let sqlite = data.join("records.sqlite3").exists();
        assert!(
            sled || sqlite,
            "after {delay_ms} ms: neither store is there"
        );
    }

    // Started for good, with its log read.
    let (mut command, port) = gateway_command(&data, &log);
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the gateway did not start");
        assert!(child.try_wait().unwrap().is_none(), "the gateway exited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: signals the test's own child process.
    unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGTERM) };
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("imported the sled store"), "{logged}");
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("db.imported-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        logged.contains(&aside[0]),
        "the log names where sled went: {logged}"
    );
    assert!(!data.join("db").exists());

    // Every record serves as before; those that were waiting in the outbox complete.
    let gateway = Gateway::start_in(data.clone(), "").await;
    let waiting: Vec<&str> = expected["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    for (id, before) in expected["records"].as_object().unwrap() {
        let record = if waiting.contains(&id.as_str()) {
            let record = gateway.wait_final(id).await;
            assert_eq!(record["state"], "Completed", "{id}");
            record
        } else {
            let record = gateway.get(&format!("/images/{id}")).await.json();
            for field in ["state", "thumbnails", "placeholder", "code", "message"] {
                assert_eq!(record[field], before[field], "{id} {field}");
            }
            record
        };
        for field in [
            "sha256",
            "md5",
            "size",
            "original",
            "created_at",
            "media_type",
            "name",
        ] {
            assert_eq!(record[field], before[field], "{id} {field}");
        }
        if record["state"] == "Completed" {
            assert_eq!(gateway.thumbnail(id).await.status, 200, "{id}");
        }
    }
}
