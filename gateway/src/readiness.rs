//! Readiness, kept current in the background: every [`INTERVAL`] the store, the queue and
//! media storage are checked, each given [`CHECK_TIMEOUT`] to answer, and what was found is
//! kept. `GET /readyz` answers from it at once, however slow a dependency is, so a probe with
//! a timeout of a second or two always gets its answer; and an upload is refused at once
//! (503, `Retry-After`) while the store or media storage failed their last check, instead of
//! waiting out the client's own timeouts to fail the same way.

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
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// What the last round of checks found. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<RwLock<Found>>);

/// The last round's findings: why each dependency is not usable, if it is not.
#[derive(Debug, Clone, Default)]
struct Found {
    store: Option<String>,
    queue: Option<String>,
    storage: Option<String>,
}

impl Readiness {
    /// Checks once, then keeps checking every [`INTERVAL`] until `shutdown` fires.
    pub async fn start(
        store: Store,
        queue: Queue,
        storage: Storage,
        mut shutdown: Shutdown,
    ) -> Self {
        let found = check(&store, &queue, &storage).await;
        let readiness = Self(Arc::new(RwLock::new(found)));
        let kept = readiness.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.recv() => return,
                    () = tokio::time::sleep(INTERVAL) => {}
                }
                let found = check(&store, &queue, &storage).await;
                *kept.0.write().unwrap_or_else(|e| e.into_inner()) = found;
            }
        });
        readiness
    }

    /// `Ok` when every dependency passed its last check, else the first reason.
    pub fn ready(&self) -> Result<(), String> {
        let found = self.0.read().unwrap_or_else(|e| e.into_inner());
        match [&found.store, &found.queue, &found.storage]
            .into_iter()
            .flatten()
            .next()
        {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// Refuses an upload while the store or media storage failed its last check (the
    /// broker is never on the upload path: an outage of it only delays jobs).
    pub fn admit_upload(&self) -> Result<(), ApiError> {
        let found = self.0.read().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &found.store {
            return Err(ApiError::Store(StoreError::Unavailable(why.clone())));
        }
        if let Some(why) = &found.storage {
            return Err(ApiError::Storage(StorageError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                why.clone(),
            ))));
        }
        Ok(())
    }
}

/// One round: every dependency checked at once, each within [`CHECK_TIMEOUT`].
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
    }
}
