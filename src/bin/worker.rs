//! `worker`: consumes jobs from RabbitMQ and writes thumbnails to the shared data directory.
//! Run as many as the load needs, on any host that mounts the data directory.

use std::process::ExitCode;
use std::sync::Arc;

use common::files::DataDir;
use common::queue::Queue;

fn main() -> ExitCode {
    let config = match thumbnailify::start("worker", "the Thumbnailify worker (RabbitMQ consumer)")
    {
        Ok(config) => config,
        Err(code) => return code,
    };
    if config.queue.url.is_none() {
        tracing::error!(
            "the worker needs queue.url (or THUMBNAILIFY_QUEUE_URL): with the embedded queue the gateway runs the workers itself"
        );
        return ExitCode::from(2);
    }
    if let Err(error) = DataDir::new(&config.data_dir).create() {
        tracing::error!(%error, "cannot create the data directory");
        return ExitCode::FAILURE;
    }
    thumbnailify::run_until_signal("worker", |shutdown| async move {
        let queue = Queue::from_config(&config.queue);
        let result = worker::run(queue.clone(), Arc::new(config), shutdown).await;
        queue.close().await;
        result
    })
}
