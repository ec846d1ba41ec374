//! The same tests on both stores: SQLite in a temporary directory, and PostgreSQL in a schema of
//! its own in the database `THUMBNAILIFY_TEST_DATABASE_URL` names (default
//! `postgres://root:root@127.0.0.1:5432/test`, which `scripts/test` provides).

use common::media::MediaType;
use common::record::{NewUpload, State};

use super::*;

/// The PostgreSQL server the tests use.
pub fn test_database_url() -> String {
    std::env::var("THUMBNAILIFY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root:root@127.0.0.1:5432/test".to_owned())
}

/// A fresh, empty PostgreSQL schema; its URL (search_path set to it).
pub async fn fresh_schema() -> String {
    use sqlx::Connection;
    let url = test_database_url();
    let schema = format!("t_{}", Uuid::now_v7().simple());
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// A new record with the default variant.
pub(crate) fn record() -> Record {
    Record::new(NewUpload {
        media_id: Uuid::now_v7(),
        media_type: Some(MediaType::Png),
        name: None,
        size: 1,
        md5: String::new(),
        sha256: String::new(),
        dimensions: None,
        variants: vec![common::variant::Variant::default_for(
            &common::config::ThumbnailConfig::default(),
        )],
        callback_url: None,
        notify_email: None,
    })
}

fn job(record: &Record) -> Job {
    record.job()
}

/// Both stores, each fresh; the directory keeps SQLite's files alive.
async fn stores() -> (tempfile::TempDir, Vec<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::Sqlite(
        SqliteStore::open(&dir.path().join("records.sqlite3"))
            .await
            .unwrap(),
    );
    let postgres = Store::Postgres(
        PostgresStore::connect(&fresh_schema().await, 4)
            .await
            .unwrap(),
    );
    (dir, vec![sqlite, postgres])
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_inserts_all_complete() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let record = record();
                    store.insert(&record, &job(&record)).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            store.list(None, None, 1000).await.unwrap().len(),
            200,
            "{}",
            store.kind()
        );
    }
}

#[tokio::test]
async fn a_tenant_lists_its_own_records_only() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let kind = store.kind();
        let records: Vec<Record> = (0..6)
            .map(|i| {
                let mut record = record();
                record.tenant = ["acme", "globex", "acme"]
                    .get(i % 4)
                    .map(|t| (*t).to_owned());
                record
            })
            .collect();
        for record in &records {
            store.insert(record, &job(record)).await.unwrap();
        }
        let acme: Vec<Record> = records
            .iter()
            .filter(|r| r.tenant.as_deref() == Some("acme"))
            .cloned()
            .collect();
        assert_eq!(acme.len(), 3, "{kind}");
        assert_eq!(
            store.list(Some("acme"), None, 10).await.unwrap(),
            acme,
            "{kind}"
        );
        let page = store
            .list(Some("acme"), Some(acme[0].media_id), 1)
            .await
            .unwrap();
        assert_eq!(page, acme[1..2], "{kind}");
        assert_eq!(
            store.list(Some("initech"), None, 10).await.unwrap(),
            [],
            "{kind}"
        );
        assert_eq!(store.list(None, None, 10).await.unwrap().len(), 6, "{kind}");
    }
}

#[tokio::test]
async fn records_list_in_order_update_atomically_and_leave_with_their_jobs() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let kind = store.kind();
        let records: Vec<Record> = (0..5).map(|_| record()).collect();
        for record in records.iter().rev() {
            store.insert(record, &job(record)).await.unwrap();
        }
        assert_eq!(store.list(None, None, 10).await.unwrap(), records, "{kind}");
        let page = store
            .list(None, Some(records[1].media_id), 2)
            .await
            .unwrap();
        assert_eq!(page, records[2..4], "{kind}");

        let id = records[0].media_id;
        let changed = store
            .update(id, |record| {
                record.state = State::Completed;
                record.thumbnails[0].state = common::record::VariantState::Ready;
                true
            })
            .await
            .unwrap();
        assert!(matches!(changed, Update::Changed(r) if r.state == State::Completed));
        assert!(matches!(
            store.update(id, |_| false).await.unwrap(),
            Update::Unchanged(r) if r.state == State::Completed
        ));
        assert_eq!(
            store.get(id).await.unwrap().unwrap().state,
            State::Completed
        );
        assert_eq!(store.processing().await.unwrap(), records[1..], "{kind}");
        let outbox = store.outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 5, "{kind}: every job waits in the outbox");
        assert_eq!(outbox[0], job(&records[0]));
        store.published(records[1].media_id).await.unwrap();
        assert_eq!(store.remove(id).await.unwrap().unwrap().media_id, id);
        assert!(matches!(
            store.update(id, |_| true).await.unwrap(),
            Update::Missing
        ));
        assert!(store.get(id).await.unwrap().is_none());
        assert!(store.remove(id).await.unwrap().is_none());
        // A job queued again is handed out again (on PostgreSQL, although an earlier call
        // claimed it); the removed record's job is gone.
        store.enqueue(&job(&records[1])).await.unwrap();
        let remaining = store.outbox(10).await.unwrap();
        assert!(
            remaining.iter().all(|job| job.media_id != id),
            "{kind}: a removed record's job goes too"
        );
        assert!(
            remaining
                .iter()
                .any(|job| job.media_id == records[1].media_id),
            "{kind}: a job queued again is handed out"
        );
        store.check().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_updates_lose_no_change() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let record = record();
        store.insert(&record, &job(&record)).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .update(record.media_id, |record| {
                            record.attempts += 1;
                            true
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let stored = store.get(record.media_id).await.unwrap().unwrap();
        assert_eq!(stored.attempts, record.attempts + 20, "{}", store.kind());
    }
}

#[tokio::test]
async fn callbacks_fall_due_with_the_final_state_and_are_leased() {
    use common::record::{CallbackState, State};
    let (_dir, stores) = stores().await;
    for store in stores {
        let kind = store.kind();
        let mut with_callback = record();
        with_callback.callback = Some(common::record::Callback {
            url: "https://hooks.example.org/".to_owned(),
            state: CallbackState::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            next_attempt_at: None,
        });
        let id = with_callback.media_id;
        store
            .insert(&with_callback, &job(&with_callback))
            .await
            .unwrap();
        let lease = std::time::Duration::from_secs(60);
        assert!(
            store.due_callbacks(10, lease).await.unwrap().is_empty(),
            "{kind}: not due while processing"
        );
        store
            .update(id, |record| {
                record.fail(422, "corrupt");
                true
            })
            .await
            .unwrap();
        let due = store.due_callbacks(10, lease).await.unwrap();
        assert_eq!(due.len(), 1, "{kind}: due once final");
        assert_eq!(due[0].state, State::Error);
        assert!(
            store.due_callbacks(10, lease).await.unwrap().is_empty(),
            "{kind}: leased"
        );
        // The outcome of the attempt: due again at once (a retry in the past).
        store
            .update(id, |record| {
                let callback = record.callback.as_mut().unwrap();
                callback.attempts = 1;
                callback.next_attempt_at = Some("2020-01-01T00:00:00Z".to_owned());
                true
            })
            .await
            .unwrap();
        assert_eq!(
            store.due_callbacks(10, lease).await.unwrap().len(),
            1,
            "{kind}"
        );
        store
            .update(id, |record| {
                record.callback.as_mut().unwrap().state = CallbackState::Delivered;
                true
            })
            .await
            .unwrap();
        store
            .update(id, |record| {
                record.callback.as_mut().unwrap().next_attempt_at = None;
                true
            })
            .await
            .unwrap();
        assert!(
            store.due_callbacks(10, lease).await.unwrap().is_empty(),
            "{kind}: delivered is never due"
        );
    }
}

#[tokio::test]
async fn a_variant_asked_for_later_is_queued_with_its_record() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let kind = store.kind();
        let first = record();
        let id = first.media_id;
        store.insert(&first, &job(&first)).await.unwrap();
        store.published(id).await.unwrap();
        store
            .update(id, |record| {
                record.state = common::record::State::Completed;
                record.thumbnails[0].state = common::record::VariantState::Ready;
                true
            })
            .await
            .unwrap();
        assert!(store.processing().await.unwrap().is_empty(), "{kind}");
        let mut wanted = first.thumbnails[0].request.clone();
        wanted.name = "320x".to_owned();
        wanted.size = "320x".parse().unwrap();
        store
            .update_and_enqueue(id, |record| {
                record
                    .thumbnails
                    .push(common::record::Thumbnail::requested(id, wanted.clone()));
                true
            })
            .await
            .unwrap();
        let outbox = store.outbox(10).await.unwrap();
        assert_eq!(outbox.len(), 1, "{kind}");
        let names: Vec<&str> = outbox[0]
            .variants
            .iter()
            .map(|v| v.variant.name.as_str())
            .collect();
        assert_eq!(names, ["320x"], "{kind}: only what is left to make");
        assert_eq!(outbox[0].variants[0].index, 1);
        assert_eq!(
            store.processing().await.unwrap().len(),
            1,
            "{kind}: a record with a variant to make has work left"
        );
    }
}

#[tokio::test]
async fn records_sharing_an_original_are_found_by_it_until_removed() {
    let (_dir, stores) = stores().await;
    for store in stores {
        let original = common::record::content_id(&"ab".repeat(32)).unwrap();
        let (mut one, mut two, other) = (record(), record(), record());
        one.original = Some(original);
        two.original = Some(original);
        for record in [&one, &two, &other] {
            store.insert(record, &record.job()).await.unwrap();
        }
        let mut found: Vec<Uuid> = store
            .with_original(original)
            .await
            .unwrap()
            .iter()
            .map(|record| record.media_id)
            .collect();
        found.sort();
        assert_eq!(found, [one.media_id, two.media_id], "{}", store.kind());
        assert_eq!(one.job().raw_path, format!("raw/{original}"));
        store.remove(one.media_id).await.unwrap();
        let left = store.with_original(original).await.unwrap();
        assert_eq!(left.len(), 1, "{}", store.kind());
        assert_eq!(left[0].media_id, two.media_id);
        // The lock is one per content id, across the gateways sharing the store.
        let lock = store.lock_content(original).await.unwrap();
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.lock_content(original).await.unwrap() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "{}: a second holder", store.kind());
        lock.release().await;
        waiting.await.unwrap().release().await;
    }
}

#[tokio::test]
async fn postgres_gateways_starting_at_once_migrate_once_and_share_the_outbox() {
    // Two gateways starting together on an empty schema: sqlx's migrator lock lets one
    // migrate while the other waits, and neither fails.
    let url = fresh_schema().await;
    let (one, two) = tokio::join!(
        PostgresStore::connect(&url, 2),
        PostgresStore::connect(&url, 2)
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    let records: Vec<Record> = (0..10).map(|_| record()).collect();
    for record in &records {
        one.insert(record, &job(record)).await.unwrap();
    }
    let (first, second) = tokio::join!(one.outbox(6), two.outbox(6));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.len() + second.len(), 10);
    assert!(first.iter().all(|job| !second.contains(job)));
    assert!(one.outbox(10).await.unwrap().is_empty(), "all are claimed");
}
