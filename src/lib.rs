//! Thumbnailify's binaries, `gateway` and `worker`, are thin: this crate holds what they share
//! (command-line arguments and logging) and the end-to-end tests under `tests/`. The work is in
//! the library crates `gateway`, `worker` and `common`.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use common::config::Config;
use common::shutdown::{Shutdown, ShutdownTrigger, signal};

/// The command line both binaries take: `[--config PATH]`.
#[derive(Debug, Default)]
pub struct Args {
    /// The configuration file, if given.
    pub config: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run with these arguments.
    Run(Args),
    /// Print the usage and exit.
    Help,
}

/// Parses the command line (without the program name).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-c" | "--config" => {
                let path = args.next().ok_or("--config needs a path")?;
                parsed.config = Some(PathBuf::from(path));
            }
            other => match other.strip_prefix("--config=") {
                Some(path) => parsed.config = Some(PathBuf::from(path)),
                None => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(Command::Run(parsed))
}

/// The usage text of a binary.
pub fn usage(binary: &str, what: &str) -> String {
    format!(
        "{binary}: {what}\n\n\
         Usage: {binary} [--config PATH]\n\n\
         The configuration is PATH, else ./config.yaml if present, else the defaults.\n\
         Environment: THUMBNAILIFY_LISTEN, THUMBNAILIFY_DATA_DIR, THUMBNAILIFY_QUEUE_URL;\n\
         RUST_LOG sets the log level (default info).\n"
    )
}

/// Logs to standard error, at the level `RUST_LOG` sets (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal: never in files, pipes or log collectors.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// Large buffers (upload bytes, raw files, pixels) go straight to the operating system and
/// back: glibc's malloc otherwise raises its mmap threshold after the first large free and
/// serves the next buffers of that size from per-thread arenas, which keep freed memory, so a
/// process that holds at most its upload budget at once can still grow to several times it.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 1024 * 1024;
        // SAFETY: mallopt only sets a malloc tunable; it is called before other threads exist.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) } != 1 {
            tracing::warn!("cannot set malloc's mmap threshold");
        }
    }
}

/// Starts a binary: parses the command line (answering `--help`), sets up logging and loads
/// the configuration. `Err` is the exit code to end with.
pub fn start(binary: &str, what: &str) -> Result<Config, ExitCode> {
    return_large_buffers_to_the_system();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            print!("{}", usage(binary, what));
            return Err(ExitCode::SUCCESS);
        }
        Err(error) => {
            eprint!("error: {error}\n\n{}", usage(binary, what));
            return Err(ExitCode::from(2));
        }
    };
    init_tracing();
    Config::load(args.config.as_deref()).map_err(|error| {
        tracing::error!(%error, "cannot load the configuration");
        ExitCode::from(2)
    })
}

/// Runs `service` on a multi-threaded runtime until it returns; SIGINT and SIGTERM fire the
/// shutdown signal it is given. Returns the process's exit code.
pub fn run_until_signal<F, E>(binary: &str, service: impl FnOnce(Shutdown) -> F) -> ExitCode
where
    F: Future<Output = Result<(), E>>,
    E: Display,
{
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
        service(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{binary} failed");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_the_config_flag_in_both_forms() {
        for args in [
            &["--config", "a.yaml"][..],
            &["--config=a.yaml"],
            &["-c", "a.yaml"],
        ] {
            let Ok(Command::Run(args)) = parse(args) else {
                panic!("{args:?}")
            };
            assert_eq!(args.config, Some(PathBuf::from("a.yaml")));
        }
        assert!(matches!(
            parse(&[]),
            Ok(Command::Run(Args { config: None }))
        ));
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
