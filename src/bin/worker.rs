//! `worker`: consumes jobs from RabbitMQ and writes thumbnails to the shared data directory.
//! Run as many as the load needs, on any host that mounts the data directory.

use std::process::ExitCode;
use std::sync::Arc;

use common::config::Config;
use common::files::DataDir;
use common::queue::Queue;
use common::shutdown::{ShutdownTrigger, signal};
use thumbnailify::{Command, init_tracing, parse_args, usage};

const WHAT: &str = "the Thumbnailify worker (RabbitMQ consumer)";

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            print!("{}", usage("worker", WHAT));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprint!("error: {error}\n\n{}", usage("worker", WHAT));
            return ExitCode::from(2);
        }
    };
    init_tracing();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) if config.queue.url.is_some() => config,
        Ok(_) => {
            tracing::error!(
                "the worker needs queue.url (or THUMBNAILIFY_QUEUE_URL): with the embedded queue the gateway runs the workers itself"
            );
            return ExitCode::from(2);
        }
        Err(error) => {
            tracing::error!(%error, "cannot load the configuration");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = DataDir::new(&config.data_dir).create() {
        tracing::error!(%error, "cannot create the data directory");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (trigger, shutdown) = ShutdownTrigger::new();
        tokio::spawn(async move {
            signal().await;
            trigger.fire();
        });
        let queue = Queue::from_config(&config.queue);
        let result = worker::run(queue.clone(), Arc::new(config), shutdown).await;
        queue.close().await;
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "worker failed");
            ExitCode::FAILURE
        }
    }
}
