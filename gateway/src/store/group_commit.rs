//! Group commit for the SQLite store: one fsync of the write-ahead log makes every commit
//! made before it durable, so writers that commit while an fsync runs share the next one.
//!
//! SQLite runs with `synchronous=NORMAL`: a commit appends its frames to the log (`-wal`)
//! without syncing it. A transaction in the log is durable once the log's bytes up to its
//! commit frame are on disk; recovery replays every frame whose checksum chain holds. So a
//! writer commits, then asks [`GroupCommit::sync`]; one task takes every writer waiting at
//! that moment, opens the log and runs `fdatasync` on a blocking thread, and answers them
//! all. A writer that asks while an fsync runs waits for the next, which starts after its
//! commit. If the log is gone (every connection closed) or was restarted, its frames were
//! checkpointed first, and a checkpoint syncs the log before it copies frames and the
//! database after: durable either way.
//!
//! Against `synchronous=FULL` (an fsync per commit, in turn on the one writer), sixteen
//! writers at once pay for one or two fsyncs instead of sixteen (BENCHMARKS.md).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// A writer waiting for its commit to be durable.
type Waiter = oneshot::Sender<Result<(), Arc<str>>>;

/// The handle writers ask for a sync through. Cheap to clone; the task ends with the last
/// clone.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    waiting: mpsc::UnboundedSender<Waiter>,
}

impl GroupCommit {
    /// Starts the task that syncs the log at `wal`. Call it inside a Tokio runtime.
    pub fn start(wal: PathBuf) -> Self {
        let (waiting, queue) = mpsc::unbounded_channel();
        tokio::spawn(syncer(wal, queue));
        Self { waiting }
    }

    /// Returns once every commit made before the call is on disk.
    pub async fn sync(&self) -> Result<(), Arc<str>> {
        let (answer, answered) = oneshot::channel();
        self.waiting
            .send(answer)
            .map_err(|_| Arc::<str>::from("the store is closed"))?;
        answered
            .await
            .unwrap_or_else(|_| Err(Arc::from("the store is closed")))
    }
}

/// Syncs the log for every writer waiting, round after round, until every handle is gone.
async fn syncer(wal: PathBuf, mut queue: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = queue.recv().await {
        let mut round = vec![first];
        while let Ok(next) = queue.try_recv() {
            round.push(next);
        }
        let wal = wal.clone();
        let synced = tokio::task::spawn_blocking(move || sync_log(&wal))
            .await
            .map_err(|error| error.to_string())
            .and_then(|synced| synced.map_err(|error| error.to_string()))
            .map_err(Arc::<str>::from);
        if let Err(error) = &synced {
            tracing::error!(%error, "cannot sync the store's log");
        }
        for waiter in round {
            let _ = waiter.send(synced.clone());
        }
    }
}

/// `fdatasync` of the log at `wal`; none there is nothing to sync (see the module doc).
fn sync_log(wal: &std::path::Path) -> std::io::Result<()> {
    match std::fs::File::open(wal) {
        Ok(log) => log.sync_data(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}
