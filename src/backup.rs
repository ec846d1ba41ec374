//! `gateway backup PATH [--config FILE]`: a consistent copy of the embedded SQLite store,
//! made while the gateway runs (see [`gateway::store::sqlite::backup`]).
//!
//! Restoring: stop the gateway, move `records.sqlite3` and its `-wal` and `-shm` files out of
//! the data directory (or wherever `store.url` puts them), copy the backup to
//! `records.sqlite3`, start the gateway. Records written after the backup are not in it; the
//! media they name stay in media storage, and `recovery.orphan_sweep_secs` clears those no
//! record names.

use std::path::PathBuf;
use std::process::ExitCode;

use common::config::{Config, LogFormat, StoreLocation};
use common::files::DataDir;

use crate::init_tracing;

const USAGE: &str = "Usage: gateway backup PATH [--config FILE]\n\n\
    Writes a consistent copy of the SQLite record store to PATH (a new file), while the \
    gateway runs.\n";

/// The arguments after `backup`: the copy's path, and the configuration file if given.
fn parse(args: impl IntoIterator<Item = String>) -> Result<(PathBuf, Option<PathBuf>), String> {
    let (mut target, mut config) = (None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => {
                config = Some(PathBuf::from(args.next().ok_or("--config needs a path")?));
            }
            other if other.starts_with('-') => {
                return Err(format!("unknown argument {other:?}"));
            }
            path if target.is_none() => target = Some(PathBuf::from(path)),
            _ => return Err("backup takes one PATH".to_owned()),
        }
    }
    Ok((target.ok_or("backup needs the PATH to write")?, config))
}

/// `gateway backup`: copies the store the configuration names (loaded as the gateway loads
/// it) to the path given. PostgreSQL stores are backed up with PostgreSQL's own tools.
pub fn run_backup(args: impl IntoIterator<Item = String>) -> ExitCode {
    let (target, config) = match parse(args) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprint!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = init_tracing(LogFormat::Text, None) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let config = match Config::load(config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "cannot load the configuration");
            return ExitCode::from(2);
        }
    };
    let file = match config.store.location() {
        Some(StoreLocation::DataDir) => DataDir::new(&config.data_dir).store_file(),
        Some(StoreLocation::Sqlite(path)) => path.to_owned(),
        Some(StoreLocation::Postgres(_)) | None => {
            tracing::error!(
                "store.url names PostgreSQL: back it up with pg_dump or the server's own backups"
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gateway::store::sqlite::backup(&file, &target)) {
        Ok(()) => {
            tracing::info!(store = %file.display(), backup = %target.display(), "backed up");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "backup failed");
            ExitCode::FAILURE
        }
    }
}
