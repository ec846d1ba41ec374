//! The SQLite store's own tests: ownership, damage, reopening, backups (the tests both
//! stores share are in `store::tests`).

use super::file::wal_path;
use super::*;
use crate::store::tests::record;

/// A store at `path` holding `count` records, closed; their ids.
async fn filled(path: &Path, count: usize) -> Vec<Uuid> {
    let store = SqliteStore::open(path).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..count {
        let record = record();
        store.insert(&record, &record.job()).await.unwrap();
        ids.push(record.media_id);
    }
    store.close().await;
    ids
}

/// The error opening the store at `path`, which must be refused as damaged and say how
/// to recover.
async fn refused_as_damaged(path: &Path) -> String {
    let error = SqliteStore::open(path).await.unwrap_err();
    assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(".recover"), "{message}");
    assert!(message.contains("gateway backup"), "{message}");
    message
}

#[tokio::test]
async fn a_second_owner_is_refused_and_told_which_lock_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.sqlite3");
    let first = SqliteStore::open(&path).await.unwrap();
    let error = SqliteStore::open(&path).await.unwrap_err();
    assert!(matches!(error, StoreError::InUse { .. }), "{error}");
    let lock = lock_path(&path).display().to_string();
    assert!(error.to_string().contains(&lock), "{error}");
    assert!(error.to_string().contains("PostgreSQL"), "{error}");
    // The lock goes with its owner.
    first.close().await;
    drop(first);
    SqliteStore::open(&path).await.unwrap();
}

#[tokio::test]
async fn a_store_reopened_has_every_record_and_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.sqlite3");
    let ids = filled(&path, 20).await;
    let store = SqliteStore::open(&path).await.unwrap();
    for id in &ids {
        assert!(store.get(*id).await.unwrap().is_some());
    }
    assert_eq!(store.outbox(100).await.unwrap().len(), ids.len());
}

#[tokio::test]
async fn a_truncated_or_damaged_file_is_refused_never_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.sqlite3");
    filled(&path, 300).await;
    let whole = std::fs::read(&path).unwrap();
    assert!(whole.len() > 16 * 4096, "{}", whole.len());

    // Cut in half.
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    refused_as_damaged(&path).await;
    // Emptied.
    std::fs::write(&path, b"").unwrap();
    refused_as_damaged(&path).await;
    // A page of a table overwritten.
    let mut scribbled = whole.clone();
    let page = 4096 * 8;
    scribbled[page..page + 4096].fill(0xa5);
    std::fs::write(&path, &scribbled).unwrap();
    refused_as_damaged(&path).await;
    // Not a database at all.
    std::fs::write(&path, b"hello, this is a text file that is long enough for a header....................................................").unwrap();
    refused_as_damaged(&path).await;
    // The database gone, its log left.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(wal_path(&path), b"WAL").unwrap();
    refused_as_damaged(&path).await;

    // Put back whole, it opens with every record.
    std::fs::remove_file(wal_path(&path)).unwrap();
    std::fs::write(&path, &whole).unwrap();
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.list(None, None, 1000).await.unwrap().len(), 300);
}

#[tokio::test]
async fn a_backup_made_while_the_store_is_written_restores_every_record_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.sqlite3");
    let store = SqliteStore::open(&path).await.unwrap();
    let mut before = Vec::new();
    for _ in 0..50 {
        let record = record();
        store.insert(&record, &record.job()).await.unwrap();
        before.push(record.media_id);
    }
    // Writes go on while the copy is made.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                let record = record();
                store.insert(&record, &record.job()).await.unwrap();
            }
        })
    };
    let copy = dir.path().join("backup.sqlite3");
    backup(&path, &copy).await.unwrap();
    writer.await.unwrap();
    // Not over an existing file.
    let again = backup(&path, &copy).await.unwrap_err();
    assert!(again.to_string().contains("exists already"), "{again}");
    store.close().await;
    drop(store);

    // Restored in place of the store, it has every record it had when made.
    remove_database(&path).unwrap();
    std::fs::copy(&copy, &path).unwrap();
    let restored = SqliteStore::open(&path).await.unwrap();
    for id in &before {
        assert!(restored.get(*id).await.unwrap().is_some());
    }
    let count = restored.list(None, None, 1000).await.unwrap().len();
    assert!((50..=250).contains(&count), "{count}");
    assert_eq!(restored.outbox(1000).await.unwrap().len(), count);
}
