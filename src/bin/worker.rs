//! `worker`: consumes jobs from RabbitMQ, reads raw uploads from and writes thumbnails to
//! media storage. Run as many as the load needs: with media in S3 a worker needs only the
//! broker URL and the S3 settings, no directory; with media in the data directory, any host
//! that mounts it.

use std::process::ExitCode;
use std::sync::Arc;

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
    thumbnailify::run_until_signal("worker", |shutdown| async move {
        let queue = Queue::from_config(&config.queue);
        let result = worker::run(queue.clone(), Arc::new(config), shutdown).await;
        queue.close().await;
        result
    })
}
