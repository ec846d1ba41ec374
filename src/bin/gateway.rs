//! `gateway`: the HTTP API. With no queue URL it also runs the workers in-process.

use std::process::ExitCode;

use common::config::Config;
use common::shutdown::{ShutdownTrigger, signal};
use thumbnailify::{Command, init_tracing, parse_args, usage};

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            print!("{}", usage("gateway", "the Thumbnailify HTTP API"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprint!(
                "error: {error}\n\n{}",
                usage("gateway", "the Thumbnailify HTTP API")
            );
            return ExitCode::from(2);
        }
    };
    init_tracing();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "cannot load the configuration");
            return ExitCode::from(2);
        }
    };
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
        gateway::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "gateway failed");
            ExitCode::FAILURE
        }
    }
}
