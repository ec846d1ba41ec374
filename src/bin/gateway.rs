//! `gateway`: the HTTP API. With no queue URL it also runs the workers in-process.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("migrate") {
        return thumbnailify::run_migrate(args.skip(1));
    }
    if args.peek().map(String::as_str) == Some("backup") {
        return thumbnailify::run_backup(args.skip(1));
    }
    match thumbnailify::start("gateway", "the Thumbnailify HTTP API") {
        Ok(config) => {
            thumbnailify::run_until_signal("gateway", |shutdown| gateway::run(config, shutdown))
        }
        Err(code) => code,
    }
}
