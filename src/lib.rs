//! Thumbnailify's binaries, `gateway` and `worker`, are thin: this crate holds what they share
//! (command-line arguments and logging) and the end-to-end tests under `tests/`. The work is in
//! the library crates `gateway`, `worker` and `common`.

use std::fmt::Display;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use common::config::{Config, LogFormat};
use common::shutdown::{Shutdown, ShutdownTrigger, signal};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

mod backup;
#[cfg(feature = "otlp")]
mod otlp;

pub use backup::run_backup;

/// The command line both binaries take: `[--config PATH] [--print-config]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// The configuration file, if given.
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets masked) and exit.
    pub print_config: bool,
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
            "--print-config" => parsed.print_config = true,
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

/// The two configurations of `gateway migrate --from A.yaml --to B.yaml`.
#[derive(Debug, PartialEq, Eq)]
pub struct MigrateArgs {
    /// The configuration naming the back-ends to copy from.
    pub from: PathBuf,
    /// The configuration naming the back-ends to copy to.
    pub to: PathBuf,
}

/// Parses the arguments after `migrate`.
pub fn parse_migrate_args(args: impl IntoIterator<Item = String>) -> Result<MigrateArgs, String> {
    let (mut from, mut to) = (None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let slot = match name.as_str() {
            "--from" => &mut from,
            "--to" => &mut to,
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = value
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a configuration file"))?;
        *slot = Some(PathBuf::from(value));
    }
    match (from, to) {
        (Some(from), Some(to)) => Ok(MigrateArgs { from, to }),
        _ => Err("migrate needs --from A.yaml and --to B.yaml".to_owned()),
    }
}

/// `gateway migrate`: copies every record and its media from the back-ends one configuration
/// file names to those another names (each file read as it is, without the environment
/// overrides, which would apply to both alike). Prints what it did.
pub fn run_migrate(args: impl IntoIterator<Item = String>) -> ExitCode {
    let args = match parse_migrate_args(args) {
        Ok(args) => args,
        Err(error) => {
            eprintln!(
                "error: {error}\n\nUsage: gateway migrate --from A.yaml --to B.yaml\n\n\
                 Copies every record and its media from A's store and media to B's \
                 (resumable: run it again to finish or retry)."
            );
            return ExitCode::from(2);
        }
    };
    return_large_buffers_to_the_system();
    if let Err(error) = init_tracing(LogFormat::Text, None) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let load = |path: &std::path::Path| {
        Config::from_file(path)
            .map_err(|error| error.to_string())
            .and_then(|config| {
                config
                    .validate()
                    .map(|()| config)
                    .map_err(|e| e.to_string())
            })
    };
    let (from, to) = match (load(&args.from), load(&args.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(error), _) | (_, Err(error)) => {
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
    match runtime.block_on(gateway::migrate::migrate(&from, &to)) {
        Ok(report) => {
            println!(
                "copied {}, already there {}, raw uploads absent at the source {}, failed {}",
                report.copied,
                report.already_there,
                report.raw_absent,
                report.failed.len()
            );
            for (media_id, error) in &report.failed {
                println!("failed {media_id}: {error}");
            }
            if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            tracing::error!(%error, "migration failed");
            ExitCode::FAILURE
        }
    }
}

/// The usage text of a binary.
pub fn usage(binary: &str, what: &str) -> String {
    let migrate = if binary == "gateway" {
        "       gateway migrate --from A.yaml --to B.yaml   (copy records and media)\n"
    } else {
        ""
    };
    format!(
        "{binary}: {what}\n\n\
         Usage: {binary} [--config PATH] [--print-config]\n{migrate}\n\
         The configuration is PATH, else ./config.yaml if present, else the defaults.\n\
         Every key can be set from the environment: THUMBNAILIFY_ and its path in capitals,\n\
         levels joined by __ (THUMBNAILIFY_LIMITS__MAX_PIXELS=50000000); also DATABASE_URL\n\
         and AWS_* for the keys left unset. --print-config prints the result, secrets\n\
         masked, and exits. RUST_LOG sets the log level (default info).\n"
    )
}

/// Logs to standard error in `format`, at the level `RUST_LOG` sets (default `info`); with
/// `otlp` (an endpoint and the service's name), also exports the spans at `info` and above
/// over OTLP/HTTP, which needs the `otlp` feature.
pub fn init_tracing(format: LogFormat, otlp: Option<(&str, &str)>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => {
            // Colour only for a person at a terminal: never in files, pipes or collectors.
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            lines.with_ansi(colour).boxed()
        }
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    // Spans are traced at `info` whatever the log level: a quiet log keeps its traces.
    #[cfg(feature = "otlp")]
    let traces = match otlp {
        Some((endpoint, service)) => Some(
            otlp::layer(endpoint, service)?
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        ),
        None => None,
    };
    #[cfg(not(feature = "otlp"))]
    let traces: Option<tracing_subscriber::layer::Identity> = match otlp {
        Some(_) => {
            return Err(
                "tracing.otlp_endpoint is set, but this build cannot export traces: build with --features otlp"
                    .to_owned(),
            );
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(traces)
        .init();
    Ok(())
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
/// the configuration. `Err` is the exit code to end with. Started by a worker as its document
/// renderer ([`worker::document`]), renders instead, and ends with `Err`.
pub fn start(binary: &str, what: &str) -> Result<Config, ExitCode> {
    // Started by a worker to render one document: do that, and nothing else.
    if let Some(code) = worker::document::child::serve_if_asked() {
        return Err(code);
    }
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
    // Logging is set up by the configuration, so a configuration that does not load is
    // reported on standard error as it is.
    let config = Config::load(args.config.as_deref()).map_err(|error| {
        eprintln!("error: cannot load the configuration: {error}");
        ExitCode::from(2)
    })?;
    if args.print_config {
        print!("{}", config.to_masked_yaml());
        return Err(ExitCode::SUCCESS);
    }
    let service = format!("thumbnailify-{binary}");
    let otlp = config
        .tracing
        .otlp_endpoint
        .as_deref()
        .map(|endpoint| (endpoint, service.as_str()));
    if let Err(error) = init_tracing(config.logging.format, otlp) {
        eprintln!("error: {error}");
        return Err(ExitCode::from(2));
    }
    Ok(config)
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
    #[cfg(feature = "otlp")]
    otlp::shutdown();
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
    fn parses_migrate_arguments() {
        let parse = |args: &[&str]| parse_migrate_args(args.iter().map(|s| s.to_string()));
        let expected = MigrateArgs {
            from: PathBuf::from("a.yaml"),
            to: PathBuf::from("b.yaml"),
        };
        assert_eq!(parse(&["--from", "a.yaml", "--to", "b.yaml"]), Ok(expected));
        assert!(parse(&["--from=a.yaml", "--to=b.yaml"]).is_ok());
        assert!(parse(&["--from", "a.yaml"]).is_err());
        assert!(parse(&["--to"]).is_err());
        assert!(parse(&["--bogus", "x"]).is_err());
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
            Ok(Command::Run(Args {
                config: None,
                print_config: false
            }))
        ));
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        let Ok(Command::Run(args)) = parse(&["--print-config", "-c", "b.yaml"]) else {
            panic!("--print-config")
        };
        assert!(args.print_config);
        assert_eq!(args.config, Some(PathBuf::from("b.yaml")));
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }
}
