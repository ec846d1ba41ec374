//! Readiness, kept current in the background: every [`INTERVAL`] the store, the queue and
//! media storage are checked, each given [`CHECK_TIMEOUT`] to answer, and what was found is
//! kept. `GET /readyz` answers from it at once, however slow a dependency is, so a probe with
//! a timeout of a second or two always gets its answer; and an upload is refused at once
//! (503, `Retry-After`) while the store or media storage has failed [`UPLOAD_FAILURES`]
//! checks in a row, instead of waiting out the client's own timeouts to fail the same way
//! (one slow answer under load does not turn uploads away).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::queue::Queue;
use common::shutdown::Shutdown;
use common::storage::{Storage, StorageError};

use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// How often the dependencies are checked.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How long one dependency may take to answer its check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks in a row the store or media storage must fail before uploads are refused at once.
pub const UPLOAD_FAILURES: u32 = 2;

/// What the last round of checks found, and whether the gateway is stopping. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness {
    found: Arc<RwLock<Found>>,
    stopping: Arc<AtomicBool>,
}

/// The last round's findings: why each dependency is not usable, if it is not, and for how
/// many rounds in a row the store and media storage have not been.
#[derive(Debug, Clone, Default)]
struct Found {
    store: Option<String>,
    queue: Option<String>,
    storage: Option<String>,
    store_failures: u32,
    storage_failures: u32,
}

impl Found {
    /// Carries the counts of failures in a row over from `before`.
    fn after(mut self, before: &Found) -> Self {
        let count = |now: &Option<String>, before: u32| now.as_ref().map_or(0, |_| before + 1);
        self.store_failures = count(&self.store, before.store_failures);
        self.storage_failures = count(&self.storage, before.storage_failures);
        self
    }
}

impl Readiness {
    /// Checks once, then keeps checking every [`INTERVAL`] until `shutdown` fires.
    pub async fn start(
        store: Store,
        queue: Queue,
        storage: Storage,
        mut shutdown: Shutdown,
    ) -> Self {
        let found = check(&store, &queue, &storage)
            .await
            .after(&Found::default());
        let readiness = Self {
            found: Arc::new(RwLock::new(found)),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        let kept = readiness.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.recv() => return,
                    () = tokio::time::sleep(INTERVAL) => {}
                }
                let found = check(&store, &queue, &storage).await;
                let mut kept = kept.found.write().unwrap_or_else(|e| e.into_inner());
                *kept = found.after(&kept);
            }
        });
        readiness
    }

    /// `Ok` when every dependency passed its last check, else the first reason.
    pub fn ready(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Relaxed) {
            return Err("this gateway is shutting down".to_owned());
        }
        let found = self.found.read().unwrap_or_else(|e| e.into_inner());
        match [&found.store, &found.queue, &found.storage]
            .into_iter()
            .flatten()
            .next()
        {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// From now on `/readyz` answers 503: the gateway is stopping, and load balancers should
    /// send it nothing new.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Refuses an upload while the store or media storage has failed [`UPLOAD_FAILURES`]
    /// checks in a row (the broker is never on the upload path: an outage of it only delays
    /// jobs).
    pub fn admit_upload(&self) -> Result<(), ApiError> {
        let found = self.found.read().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &found.store
            && found.store_failures >= UPLOAD_FAILURES
        {
            return Err(ApiError::Store(StoreError::Unavailable(why.clone())));
        }
        if let Some(why) = &found.storage
            && found.storage_failures >= UPLOAD_FAILURES
        {
            return Err(ApiError::Storage(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                why.clone(),
            ))));
        }
        Ok(())
    }
}

/// One round: every dependency checked at once, each within [`CHECK_TIMEOUT`] (the counts
/// of failures in a row are [`Found::after`]'s).
async fn check(store: &Store, queue: &Queue, storage: &Storage) -> Found {
    let late = |what: &str| format!("{what} did not answer within {} s", CHECK_TIMEOUT.as_secs());
    let (store, storage) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, store.check()),
        tokio::time::timeout(CHECK_TIMEOUT, storage.check()),
    );
    Found {
        store: match store {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(late("the store")),
        },
        queue: queue.check().err().map(|error| error.to_string()),
        storage: match storage {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(late("media storage")),
        },
        ..Found::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_refused_only_after_failures_in_a_row() {
        let failing = || Found {
            storage: Some("media storage did not answer within 2 s".to_owned()),
            ..Found::default()
        };
        let readiness = Readiness {
            found: Arc::new(RwLock::new(failing().after(&Found::default()))),
            stopping: Arc::default(),
        };
        assert!(readiness.ready().is_err(), "readyz says so at once");
        assert!(
            readiness.admit_upload().is_ok(),
            "one slow answer turns no upload away"
        );
        let twice = failing().after(&readiness.found.read().unwrap());
        *readiness.found.write().unwrap() = twice;
        assert!(matches!(
            readiness.admit_upload(),
            Err(ApiError::Storage(_))
        ));
        let healed = Found::default().after(&readiness.found.read().unwrap());
        *readiness.found.write().unwrap() = healed;
        assert!(readiness.admit_upload().is_ok() && readiness.ready().is_ok());
        readiness.stop();
        assert!(
            readiness.ready().is_err(),
            "a stopping gateway is not ready"
        );
    }
}
