//! Thumbnailify's gateway: the HTTP API, the record store, and the ends of the queue.
//!
//! One upload is one straight line through these modules:
//!
//! - [`routes::upload`]: reads the body ([`body`]: base64 decoded as it streams), checks and
//!   writes it ([`ingest`]: magic bytes, header, hashes, atomic raw file), stores the record
//!   ([`store`], flushed), queues the job, answers 202.
//! - a worker (the `worker` crate, in-process or remote) makes the thumbnail.
//! - [`results`]: applies the worker's result to the record, flushes, acks.
//! - [`routes::record`], [`routes::thumbnail`], [`routes::list`], [`routes::delete`] serve
//!   what was made.
//!
//! [`error`] maps every failure to HTTP in one place. [`recovery`] queues again, at start-up,
//! the jobs a crash left unfinished, and removes the files it left behind.

pub mod body;
pub mod error;
pub mod ingest;
pub mod metrics;
pub mod recovery;
pub mod results;
pub mod routes;
pub mod state;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use common::files::DataDir;
use common::queue::Queue;
use common::shutdown::{Shutdown, ShutdownTrigger};
use tokio::net::TcpListener;

pub use error::{ApiError, GatewayError};

use crate::metrics::Metrics;
use crate::results::Results;
use crate::state::AppState;
use crate::store::Store;

/// How long shutdown waits for the last results once the workers have stopped.
const RESULTS_DRAIN: Duration = Duration::from_secs(30);

/// Binds `config.listen` and serves until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), GatewayError> {
    let listener = TcpListener::bind(&config.listen).await?;
    serve(listener, config, shutdown).await
}

/// Serves on `listener` until `shutdown` fires; then stops accepting, finishes the jobs in
/// flight, records their results and flushes the store.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    mut shutdown: Shutdown,
) -> Result<(), GatewayError> {
    let config = Arc::new(config);
    let data = DataDir::new(&config.data_dir);
    data.create()?;
    let store = Store::open(&data.db_dir())?;
    let (sweep_store, sweep_data, keep_raw) = (store.clone(), data.clone(), config.keep_raw);
    tokio::task::spawn_blocking(move || recovery::sweep_files(&sweep_store, &sweep_data, keep_raw))
        .await
        .map_err(std::io::Error::other)??;
    let queue = match &config.queue.url {
        None => Queue::embedded(),
        Some(_) => {
            return Err(GatewayError::Config(
                "queue.url is set but this build has only the embedded queue".to_owned(),
            ));
        }
    };
    let metrics = Arc::new(Metrics::new());

    let results = Results {
        store: store.clone(),
        data: data.clone(),
        config: Arc::clone(&config),
        metrics: Arc::clone(&metrics),
    };
    let results_task = tokio::spawn(results.run(queue.consume_results().await?));
    let (workers_trigger, workers_shutdown) = ShutdownTrigger::new();
    let workers = tokio::spawn(worker::run(
        queue.clone(),
        Arc::clone(&config),
        workers_shutdown,
    ));
    let requeued = recovery::requeue(&store, &queue, &metrics).await?;

    let state = AppState {
        config: Arc::clone(&config),
        store: store.clone(),
        queue,
        data,
        metrics,
    };
    tracing::info!(address = %listener.local_addr()?, queue = state.queue.kind(), requeued, "listening");
    axum::serve(listener, routes::router(state))
        .with_graceful_shutdown(async move { shutdown.recv().await })
        .await?;

    tracing::info!("HTTP stopped; finishing the jobs in flight");
    workers_trigger.fire();
    match workers.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "the workers stopped with an error"),
        Err(error) => tracing::error!(%error, "the workers' task failed"),
    }
    // Every queue handle is gone now, so the results queue closes once drained.
    if tokio::time::timeout(RESULTS_DRAIN, results_task)
        .await
        .is_err()
    {
        tracing::warn!("results still pending at shutdown; their jobs run again at the next start");
    }
    store.flush().await?;
    tracing::info!("stopped");
    Ok(())
}
