//! `gateway migrate --from A.yaml --to B.yaml`: copies every record and its media from one
//! pair of back-ends to another, typically from the embedded ones (sled, the data directory)
//! to the distributed ones (PostgreSQL, S3), so that a service started on one machine can
//! grow without losing anything.
//!
//! For each record of the source, in id order:
//! 1. skip it if the target has a record with its id (migrated by an earlier run: a record
//!    is written last, so its objects are there); this makes the migration resumable;
//! 2. copy its raw upload, if the source still has it, and read it back: its SHA-256 must be
//!    the record's `sha256`;
//! 3. copy its thumbnail, if it has one, and read it back: its SHA-256 must be the source's;
//! 4. add the record to the target (with its job queued again if it was still processing).
//!
//! A record whose objects cannot be copied or verified is reported and left out of the target,
//! and the command fails at the end; running it again retries those. Stop the gateways using
//! the source first (SQLite refuses a second gateway anyway); the target may be live.
//!
//! The same loop ([`copy_records`]) imports a sled store from before SQLite when the
//! embedded store opens ([`import_sled`]): records only (their media stay where they are),
//! each read back from SQLite and compared with sled's, jobs in sled's outbox kept in
//! SQLite's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::config::Config;
use common::message::Job;
use common::record::{Record, VariantState};
use common::storage::{Key, Storage, StorageError};
use sha2::{Digest, Sha256};

use crate::error::GatewayError;
use crate::store::sled::SledRecords;
use crate::store::{SqliteStore, Store, StoreError};

/// Records read from the source at a time.
const PAGE: usize = 500;

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records copied, with their objects.
    pub copied: usize,
    /// Records the target had already.
    pub already_there: usize,
    /// Raw uploads the source no longer had (final records, unless `keep_raw` was on).
    pub raw_absent: usize,
    /// Records left out, with why.
    pub failed: Vec<(uuid::Uuid, String)>,
}

/// Why one record could not be migrated.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} changed on the way: its SHA-256 read back is not the one expected")]
    Mismatch(&'static str),
    #[error("the record says Completed but the source has no thumbnail")]
    MissingThumbnail,
    #[error("the record read back from the target is not the one written")]
    RecordMismatch,
}

/// The hex SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The back-ends one configuration names.
struct Ends {
    store: Store,
    storage: Storage,
}

async fn open(config: &Config) -> Result<Ends, GatewayError> {
    let data = common::files::DataDir::new(&config.data_dir);
    Ok(Ends {
        store: Store::open(&config.store, &data).await?,
        storage: Storage::from_config(config)?,
    })
}

/// Copies every record and its media from `from` to `to`.
pub async fn migrate(from: &Config, to: &Config) -> Result<Report, GatewayError> {
    let (source, target) = (open(from).await?, open(to).await?);
    tracing::info!(
        from = %format!("{} + {}", source.store.kind(), source.storage.kind()),
        to = %format!("{} + {}", target.store.kind(), target.storage.kind()),
        "migrating"
    );
    let report = copy_records(
        Source::Store(&source.store),
        &target.store,
        Some((&source.storage, &target.storage)),
    )
    .await?;
    Ok(report)
}

/// Where records come from.
enum Source<'a> {
    /// A store: a record with work left gets its job queued again.
    Store(&'a Store),
    /// A sled store from before SQLite, with the jobs its outbox held.
    Sled(&'a Arc<SledRecords>),
}

impl Source<'_> {
    /// Up to [`PAGE`] records after `after`, in id order, each with the job to queue.
    async fn page(
        &self,
        after: Option<uuid::Uuid>,
    ) -> Result<Vec<(Record, Option<Job>)>, StoreError> {
        match self {
            Source::Store(store) => Ok(store
                .list(None, after, PAGE)
                .await?
                .into_iter()
                .map(|record| {
                    let job = record.needs_work().then(|| record.job());
                    (record, job)
                })
                .collect()),
            Source::Sled(sled) => {
                let sled = Arc::clone(sled);
                tokio::task::spawn_blocking(move || sled.page(after, PAGE))
                    .await
                    .map_err(|error| StoreError::Import(error.to_string()))?
            }
        }
    }
}

/// Copies every record of `source` that `target` lacks, with its job, and with `objects`
/// (source and target storage) its media, verified; each record is read back from the
/// target and compared with the source's.
async fn copy_records(
    source: Source<'_>,
    target: &Store,
    objects: Option<(&Storage, &Storage)>,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut after = None;
    loop {
        let page = source.page(after).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.media_id);
        for (record, job) in page {
            if target.get(record.media_id).await?.is_some() {
                report.already_there += 1;
                continue;
            }
            match copy(&record, job.as_ref(), objects, target, &mut report).await {
                Ok(()) => report.copied += 1,
                Err(error) => {
                    tracing::error!(media_id = %record.media_id, %error, "not copied");
                    report.failed.push((record.media_id, error.to_string()));
                }
            }
        }
        tracing::info!(
            copied = report.copied,
            already_there = report.already_there,
            "progress"
        );
    }
    Ok(report)
}

/// Imports the sled store in `sled_dir`, if there is one, into a new SQLite store at `file`,
/// then moves the sled directory aside. Made under a temporary name and renamed into place
/// once every record is in and verified, so that an import cut off by a crash leaves no
/// `file` and starts again from the beginning at the next start.
pub async fn import_sled(sled_dir: &Path, file: &Path) -> Result<(), StoreError> {
    if !crate::store::sled::exists(sled_dir) {
        return Ok(());
    }
    if file.exists() {
        // Imported by an earlier start, which stopped before moving the sled store aside.
        move_aside(sled_dir)?;
        return Ok(());
    }
    let opening = sled_dir.to_owned();
    let sled = tokio::task::spawn_blocking(move || SledRecords::open(&opening))
        .await
        .map_err(|error| StoreError::Import(error.to_string()))??;
    let sled = Arc::new(sled);
    tracing::info!(
        from = %sled_dir.display(),
        to = %file.display(),
        records = sled.count(),
        "importing the sled store into SQLite"
    );
    let importing = crate::store::sqlite::sibling(file, ".importing");
    crate::store::sqlite::remove_database(&importing)?;
    let target = Store::Sqlite(SqliteStore::open(&importing).await?);
    let report = copy_records(Source::Sled(&sled), &target, None).await?;
    if let Some((media_id, why)) = report.failed.first() {
        return Err(StoreError::Import(format!(
            "{} of {} records could not be imported (the first, {media_id}: {why}); the sled store is left as it was",
            report.failed.len(),
            sled.count()
        )));
    }
    target.close().await;
    drop(target);
    crate::store::sqlite::rename_database(&importing, file)?;
    drop(sled);
    let aside = move_aside(sled_dir)?;
    tracing::info!(
        records = report.copied,
        store = %file.display(),
        sled_moved_to = %aside.display(),
        "imported the sled store: every record read back and verified"
    );
    Ok(())
}

/// Renames the imported sled directory to `db.imported-<time>` beside it; returns the name.
fn move_aside(sled_dir: &Path) -> Result<PathBuf, StoreError> {
    let stamp = common::time::now_rfc3339().replace([':', '-', '.'], "");
    let mut name = sled_dir.as_os_str().to_owned();
    name.push(format!(".imported-{stamp}"));
    let aside = PathBuf::from(name);
    let io = |source| StoreError::OpenFile {
        path: sled_dir.to_owned(),
        source,
    };
    std::fs::rename(sled_dir, &aside).map_err(io)?;
    crate::store::sqlite::sync_parent(sled_dir).map_err(io)?;
    tracing::info!(path = %aside.display(), "moved the imported sled store aside");
    Ok(aside)
}

/// The indexes of the variants of `record` that were made (a record from before variants
/// existed has its one thumbnail as variant 0).
fn made_variants(record: &Record) -> Vec<u16> {
    if record.thumbnails.is_empty() {
        return if record.thumbnail.is_some() {
            vec![0]
        } else {
            Vec::new()
        };
    }
    (0..record.thumbnails.len())
        .filter(|&index| record.thumbnails[index].state == VariantState::Ready)
        .filter_map(|index| u16::try_from(index).ok())
        .collect()
}

/// Copies one record: with `objects`, its objects first, verified; then the record (and
/// `job`), read back and compared.
async fn copy(
    record: &Record,
    job: Option<&Job>,
    objects: Option<(&Storage, &Storage)>,
    target: &Store,
    report: &mut Report,
) -> Result<(), RecordError> {
    if let Some((from, to)) = objects {
        copy_objects(record, from, to, report).await?;
    }
    target.import(record, job).await?;
    let back = target.get(record.media_id).await?;
    if back.map(|back| serde_json::to_value(back).ok()) != Some(serde_json::to_value(record).ok()) {
        return Err(RecordError::RecordMismatch);
    }
    Ok(())
}

/// Copies one record's raw upload and made variants from `from` to `to`, each read back and
/// checked against its SHA-256.
async fn copy_objects(
    record: &Record,
    from: &Storage,
    to: &Storage,
    report: &mut Report,
) -> Result<(), RecordError> {
    let id = record.media_id;
    let raw_key = Key::raw(record.raw_id());
    match from.get(raw_key).await? {
        Some(raw) => {
            let raw_copy = raw.clone();
            to.put(raw_key, raw).await?;
            let back = to.get(raw_key).await?.unwrap_or_default();
            // A source fetched by a job whose result has not come yet: its digest is not
            // known, the bytes are compared with what was read instead.
            let expected = match record.sha256.as_str() {
                "" => sha256(&raw_copy),
                known => known.to_owned(),
            };
            if sha256(&back) != expected {
                return Err(RecordError::Mismatch("the raw upload"));
            }
        }
        None => report.raw_absent += 1,
    }
    for index in made_variants(record) {
        let key = Key::variant(id, index);
        let thumbnail = from.get(key).await?.ok_or(RecordError::MissingThumbnail)?;
        let expected = sha256(&thumbnail);
        to.put(key, thumbnail).await?;
        let back = to.get(key).await?.unwrap_or_default();
        if sha256(&back) != expected {
            return Err(RecordError::Mismatch("a thumbnail"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sqlx::Connection;

    use super::*;

    /// The fixture data directory written by a sled-era gateway
    /// (`tests/fixtures/make_sled_store.py`), unpacked; and what it holds.
    fn unpack() -> (tempfile::TempDir, PathBuf, serde_json::Value) {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(fixtures.join("sled-store.tar.gz"))
            .arg("-C")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let expected =
            serde_json::from_slice(&std::fs::read(fixtures.join("sled-store.json")).unwrap())
                .unwrap();
        let data = dir.path().join("data");
        (dir, data, expected)
    }

    /// The names in `dir`.
    fn names(dir: &Path) -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_sled_store_is_imported_whole_verified_and_moved_aside() {
        let (_dir, data, expected) = unpack();
        let file = data.join("records.sqlite3");
        // What an import cut off by a crash left: it starts again from nothing.
        std::fs::write(data.join("records.sqlite3.importing"), b"half an import").unwrap();
        std::fs::write(data.join("records.sqlite3.importing-wal"), b"half a log").unwrap();

        import_sled(&data.join("db"), &file).await.unwrap();

        let left = names(&data);
        assert!(!left.contains("db"), "{left:?}");
        assert_eq!(
            left.iter()
                .filter(|name| name.starts_with("db.imported-"))
                .count(),
            1,
            "{left:?}"
        );
        assert!(
            !left.iter().any(|name| name.contains(".importing")),
            "{left:?}"
        );
        let store = SqliteStore::open(&file).await.unwrap();
        let records = expected["records"].as_object().unwrap();
        assert_eq!(
            store.list(None, None, 100).await.unwrap().len(),
            records.len()
        );
        let mut states = BTreeSet::new();
        for (id, answered) in records {
            let record = store.get(id.parse().unwrap()).await.unwrap().unwrap();
            let record = serde_json::to_value(&record).unwrap();
            for field in [
                "state",
                "sha256",
                "md5",
                "original",
                "size",
                "created_at",
                "thumbnails",
            ] {
                assert_eq!(record[field], answered[field], "{id} {field}");
            }
            states.insert(answered["state"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            states,
            BTreeSet::from(["Completed", "Error", "Processing"].map(str::to_owned))
        );
        // The jobs sled's outbox held, and only those.
        let jobs: BTreeSet<String> = store
            .outbox(100)
            .await
            .unwrap()
            .into_iter()
            .map(|job| job.media_id.to_string())
            .collect();
        let waiting: BTreeSet<String> = expected["outbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(jobs, waiting);
        // The pending callback kept its due time; the records processing are indexed so.
        store.close().await;
        drop(store);
        let mut sql = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let (due, processing): (i64, i64) =
            sqlx::query_as("SELECT count(callback_due), sum(processing) FROM records")
                .fetch_one(&mut sql)
                .await
                .unwrap();
        assert_eq!((due, processing), (1, 2));
        sql.close().await.unwrap();

        // Started again, there is nothing left to import and the store is as it was.
        import_sled(&data.join("db"), &file).await.unwrap();
        let store = SqliteStore::open(&file).await.unwrap();
        assert_eq!(
            store.list(None, None, 100).await.unwrap().len(),
            records.len()
        );
    }

    #[tokio::test]
    async fn an_import_that_finished_but_left_sled_in_place_only_moves_it_aside() {
        let (_dir, data, _) = unpack();
        let file = data.join("records.sqlite3");
        import_sled(&data.join("db"), &file).await.unwrap();
        let aside = names(&data)
            .into_iter()
            .find(|name| name.starts_with("db.imported-"))
            .unwrap();
        // As if the process died between the rename of the store and the move of sled.
        std::fs::rename(data.join(&aside), data.join("db")).unwrap();
        import_sled(&data.join("db"), &file).await.unwrap();
        assert!(!data.join("db").exists());
        let store = SqliteStore::open(&file).await.unwrap();
        assert_eq!(store.list(None, None, 100).await.unwrap().len(), 7);
    }
}
