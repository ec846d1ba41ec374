//! Thumbnailify's gateway: the HTTP API, the record store, and the ends of the queue.
//!
//! One upload is one straight line through these modules:
//!
//! - [`routes::upload`]: reads the body ([`body`]: base64 decoded as it streams; or each
//!   file of a multipart form written to the [`common::spool`] as it streams), checks and writes it
//!   ([`ingest`]: magic bytes, header, hashes, atomic raw file), stores the record and its
//!   job ([`store`], one transaction, flushed), answers 202.
//! - [`outbox`]: publishes the job to the queue, and takes it out once confirmed.
//! - a worker (the `worker` crate, in-process or remote) makes the thumbnail.
//! - [`results`]: applies the worker's result to the record, flushes, acks; wakes the
//!   requests waiting for it ([`waiters`]) and the [`callbacks`] deliverer.
//! - [`routes::record`], [`routes::thumbnail`], [`routes::list`], [`routes::delete`] serve
//!   what was made.
//!
//! [`error`] maps every failure to HTTP in one place. [`recovery`] queues again, at start-up,
//! the jobs a crash left unfinished, and removes the files it left behind; [`sweeper`] queues
//! again, or fails, jobs that never finish.

pub mod admission;
pub mod auth;
pub mod body;
pub mod callbacks;
pub mod dedup;
pub mod error;
pub mod ingest;
pub mod json_errors;
pub mod memory;
pub mod metrics;
pub mod migrate;
pub mod openapi;
pub mod outbox;
pub mod protocol;
pub mod readiness;
pub mod recovery;
pub mod request_id;
pub mod results;
pub mod routes;
pub mod server;
pub mod source_quota;
pub mod state;
pub mod store;
pub mod sweeper;
pub mod waiters;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use common::files::DataDir;
use common::queue::Queue;
use common::shutdown::{Shutdown, ShutdownTrigger};
use common::storage::{Storage, StorageError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use error::{ApiError, GatewayError};

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::results::Results;
use crate::state::AppState;
use crate::store::Store;

/// How long shutdown waits for the last results once the workers have stopped.
const RESULTS_DRAIN: Duration = Duration::from_secs(30);

/// Binds `config.listen` and serves until `shutdown` fires.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), GatewayError> {
    let listener =
        TcpListener::bind(&config.listen)
            .await
            .map_err(|source| GatewayError::Listen {
                address: config.listen.clone(),
                source,
            })?;
    serve(listener, config, shutdown).await
}

/// Refuses a configured output format (the default, or a preset's) that this build cannot
/// write, rather than refusing every upload that uses it.
fn check_formats(config: &Config) -> Result<(), GatewayError> {
    let thumbnail = &config.thumbnail;
    let default = common::variant::Variant::default_for(thumbnail);
    let presets = thumbnail
        .presets
        .values()
        .map(|preset| common::variant::Variant {
            format: preset.format.unwrap_or(default.format),
            lossless: preset.lossless.unwrap_or(default.lossless),
            animated: preset.animated.unwrap_or(default.animated),
            ..default.clone()
        });
    for variant in std::iter::once(default.clone()).chain(presets) {
        if let Err(why) = worker::encode::writes(&variant) {
            return Err(GatewayError::Config(format!(
                "thumbnail format {} {why}",
                variant.format.as_str()
            )));
        }
    }
    Ok(())
}

/// Serves on `listener` until `shutdown` fires; then stops accepting, finishes the jobs in
/// flight (embedded queue), records their results and flushes the store.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), GatewayError> {
    check_formats(&config)?;
    let config = Arc::new(config);
    let data = DataDir::new(&config.data_dir);
    let storage = Storage::from_config(&config).map_err(|error| match error {
        StorageError::Io(source) => GatewayError::DataDir {
            path: data.root().to_owned(),
            source,
        },
        other => GatewayError::Storage(other),
    })?;
    let spool = common::spool::Spool::new(&data);
    let dead = spool
        .remove_dead()
        .map_err(|source| GatewayError::DataDir {
            path: data.spool_dir(),
            source,
        })?;
    if dead > 0 {
        tracing::info!(removed = dead, "removed the spools of processes that died");
    }
    let store = Store::open(&config.store, &data).await?;
    let queue = Queue::from_config(&config.queue);
    // With the embedded store this gateway alone writes raw uploads; with the embedded queue
    // too, it alone writes thumbnails (its workers have not started yet): what was left
    // half-written is garbage, however young.
    let sole_raw_writer = store.is_embedded();
    let sole_writer = sole_raw_writer && matches!(queue, Queue::Embedded(_));
    recovery::remove_temp_files(&storage, sole_raw_writer, sole_writer).await?;
    if sole_writer {
        // Nothing else writes: every orphan is one, however young, and none can appear while
        // the sweep runs, since the gateway does not serve yet.
        recovery::sweep_orphans(&store, &storage, config.keep_raw, Duration::ZERO).await?;
    } else {
        // Other processes write meanwhile, and a bucket may hold millions of objects: sweep
        // past the grace period in the background, and serve at once.
        let (store, storage, keep_raw) = (store.clone(), storage.clone(), config.keep_raw);
        let grace = Duration::from_secs(config.recovery.orphan_grace_secs);
        tokio::spawn(async move {
            if let Err(error) = recovery::sweep_orphans(&store, &storage, keep_raw, grace).await {
                tracing::error!(%error, "orphan sweep failed");
            }
        });
    }
    let keys = auth::ApiKeys::load(&config.auth)?;
    let signer = callbacks::load_secret(&config.callbacks)?;
    if config.callbacks.url.is_some() && signer.is_none() {
        return Err(GatewayError::Callbacks(callbacks::CallbackError::Secret(
            "callbacks.url is set but there is no secret to sign with".to_owned(),
        )));
    }
    let mailer = callbacks::email::Mailer::new(&config, storage.clone())?;
    let callback_settings = callbacks::Settings {
        enabled: signer.is_some(),
        mail: mailer.is_some(),
        allowed: common::address::Allowed::new(&config.callbacks.allowed_hosts),
    };
    let metrics = Arc::new(Metrics::new());
    let sources = source_quota::SourceQuota::default();
    let waiters = waiters::Waiters::new(sources.clone());
    let deliveries = callbacks::Wake::default();
    let processing =
        recovery::requeue(&store, queue.is_durable(), &config.recovery, &metrics).await?;

    let results = Results {
        store: store.clone(),
        storage: storage.clone(),
        config: Arc::clone(&config),
        metrics: Arc::clone(&metrics),
        waiters: waiters.clone(),
        deliveries: deliveries.clone(),
    };
    if let Store::Postgres(postgres) = &store {
        tokio::spawn(postgres.clone().forward_finals(waiters.clone()));
    }
    let results_task = tokio::spawn(results.clone().run(queue.consume_results().await?));
    let dead_task = queue
        .consume_dead_jobs()
        .map(|dead| tokio::spawn(results.run_dead_jobs(dead)));
    let (stop_trigger, stop) = ShutdownTrigger::new();
    // Listening before the embedded workers start, so that their first heartbeat is heard.
    let heard = workers::Workers::default();
    tokio::spawn(heard.clone().listen(queue.heartbeats()));
    let workers = match queue {
        Queue::Embedded(_) => Some(tokio::spawn(worker::run(
            queue.clone(),
            Arc::clone(&config),
            stop.clone(),
        ))),
        Queue::Amqp(_) | Queue::Redis(_) => None,
    };
    let deliverer = callbacks::Deliverer::new(
        store.clone(),
        &config,
        signer,
        mailer,
        Arc::clone(&metrics),
        deliveries.clone(),
    )?;
    let delivering = tokio::spawn(deliverer.run(stop.clone()));
    let readiness =
        readiness::Readiness::start(store.clone(), queue.clone(), storage.clone(), stop.clone())
            .await;
    let outbox = Outbox::new(store.clone(), queue.clone());
    let publisher = tokio::spawn(outbox.clone().run(stop.clone()));
    outbox.wake();
    let sweeper = tokio::spawn(
        sweeper::Sweeper {
            store: store.clone(),
            storage: storage.clone(),
            outbox: outbox.clone(),
            config: config.recovery.clone(),
            keep_raw: config.keep_raw,
            metrics: Arc::clone(&metrics),
        }
        .run(stop),
    );

    let video = worker::video::available(&config.video).await;
    match &video {
        Ok(version) => tracing::info!(%version, "video is on"),
        Err(why) => tracing::warn!(%why, "video uploads will be refused"),
    }
    let state = AppState {
        video,
        workers: heard,
        readiness,
        sources,
        admission: admission::Admission::new(
            &config.limits,
            // Free disk matters where the gateway writes: SQLite, or media in the directory.
            (store.is_embedded() || matches!(storage, Storage::Dir(_)))
                .then(|| data.root().to_owned()),
        ),
        memory: memory::UploadMemory::new(
            config.limits.max_upload_memory_bytes,
            admission::SLOT_WAIT,
        ),
        config: Arc::clone(&config),
        store: store.clone(),
        queue: queue.clone(),
        storage,
        spool,
        metrics,
        outbox,
        waiters,
        callbacks: callback_settings,
        deliveries,
    };
    tracing::info!(
        address = %listener.local_addr()?,
        queue = queue.kind(),
        store = store.kind(),
        storage = state.storage.kind(),
        processing,
        "listening"
    );
    let limits = &config.limits;
    let (drain, grace) = (
        Duration::from_secs(config.server.drain_secs),
        Duration::from_secs(config.server.shutdown_grace_secs),
    );
    let server_limits = server::ServerLimits {
        read_timeout: Duration::from_secs(limits.read_timeout_secs),
        keep_alive: Duration::from_secs(limits.keep_alive_secs),
        max_connections: limits.max_connections,
        max_connections_per_client: limits.max_connections_per_client,
        shutdown_grace: grace.saturating_sub(drain),
    };
    let http_stop = drain_on(shutdown, state.readiness.clone(), drain);
    server::serve(
        listener,
        routes::router(state, keys),
        server_limits,
        http_stop,
    )
    .await;

    tracing::info!("HTTP stopped; finishing the jobs in flight");
    stop_trigger.fire();
    if let Some(workers) = workers {
        match workers.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the workers stopped with an error"),
            Err(error) => tracing::error!(%error, "the workers' task failed"),
        }
    }
    log_task_end("outbox publisher", publisher).await;
    log_task_end("sweeper", sweeper).await;
    log_task_end("callback deliverer", delivering).await;
    // RabbitMQ: stop consuming (unacked results go back to the broker). Embedded: every queue
    // handle is gone once this one is dropped, so the results queue closes once drained.
    queue.close().await;
    drop(queue);
    if tokio::time::timeout(RESULTS_DRAIN, results_task)
        .await
        .is_err()
    {
        tracing::warn!("results still pending at shutdown; their jobs run again at the next start");
    }
    if let Some(dead_task) = dead_task {
        log_task_end("dead-letter consumer", dead_task).await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// What SIGTERM starts: `/readyz` answers 503 at once, and the returned signal, which stops
/// the HTTP server taking new connections, fires `drain` later, once load balancers have
/// had the time to stop sending any.
fn drain_on(mut signal: Shutdown, readiness: readiness::Readiness, drain: Duration) -> Shutdown {
    let (trigger, http_stop) = ShutdownTrigger::new();
    tokio::spawn(async move {
        signal.recv().await;
        readiness.stop();
        tracing::info!(
            drain_secs = drain.as_secs(),
            "shutting down: /readyz answers 503; new connections are refused after the drain"
        );
        tokio::time::sleep(drain).await;
        trigger.fire();
    });
    http_stop
}

async fn log_task_end(name: &str, task: JoinHandle<()>) {
    if let Err(error) = task.await {
        tracing::error!(%error, task = name, "background task failed");
    }
}

#[cfg(test)]
mod tests {
    use common::config::OutputFormat;
    use common::variant::{Preset, Size};

    use super::*;

    #[test]
    fn a_configured_format_this_build_cannot_write_stops_the_start() {
        let avif = worker::encode::supports(OutputFormat::Avif);
        let mut config = Config::default();
        assert!(check_formats(&config).is_ok());
        config.thumbnail.format = OutputFormat::Avif;
        assert_eq!(check_formats(&config).is_ok(), avif);

        let mut config = Config::default();
        let size = Size {
            width: Some(64),
            height: None,
        };
        let preset = Preset {
            size,
            fit: None,
            format: Some(OutputFormat::Avif),
            quality: None,
            enlarge: None,
            lossless: None,
            gravity: None,
            focus: None,
            color: None,
            animated: None,
        };
        config.thumbnail.presets.insert("card".into(), preset);
        assert_eq!(check_formats(&config).is_ok(), avif);
    }
}
