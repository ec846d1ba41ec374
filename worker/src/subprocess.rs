//! One subprocess that reads untrusted input (FFmpeg, or this program rendering a document
//! in [`crate::document`]), run as such input demands: no stdin, an address-space cap
//! (`RLIMIT_AS`) and no core dumps set in the child before it executes, its output read up
//! to a bound, and a wall-clock timeout after which it is killed and reaped. A child that
//! outlives its caller's interest (the job's future dropped) is killed too.
//!
//! A child dies with its process, however the process ends (SIGKILL included): it asks the
//! kernel for SIGKILL when its parent goes (`PR_SET_PDEATHSIG`, kept across `exec`). The
//! kernel sends it when the *thread* that forked the child ends, so every child is forked
//! by one thread that lives as long as the process ([`spawn`]), never by a pool thread
//! that may retire.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// What one run may use.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Wall-clock time before the process is killed.
    pub timeout: Duration,
    /// Address space the process may map, in bytes.
    pub max_memory: u64,
    /// Bytes of standard output kept; more is an error.
    pub max_output: usize,
}

/// How a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program is not installed (or not where the configuration says).
    #[error("{0} is not installed")]
    Missing(String),
    /// The program could not be started or read.
    #[error("{program} could not run: {error}")]
    Io {
        /// The program.
        program: String,
        /// Why.
        error: std::io::Error,
    },
    /// The program ran past its timeout and was killed.
    #[error("{program} took longer than {secs} s and was stopped")]
    Timeout {
        /// The program.
        program: String,
        /// The timeout.
        secs: u64,
    },
    /// The program wrote more than it may.
    #[error("{program} wrote more than {max} bytes and was stopped")]
    TooMuchOutput {
        /// The program.
        program: String,
        /// The bound.
        max: usize,
    },
    /// The program failed; `detail` is the last line of its error output.
    #[error("{detail}")]
    Failed {
        /// The last line it wrote to standard error, with file paths removed.
        detail: String,
    },
}

/// Bytes of standard error kept, for the failure's account.
const MAX_STDERR: usize = 16 * 1024;

/// Runs `program` with `args` within `bounds`; returns its standard output. `file` is the
/// input path: it is removed from error messages.
pub async fn run(
    program: &Path,
    args: &[OsString],
    file: &Path,
    bounds: Bounds,
) -> Result<Vec<u8>, RunError> {
    let name = program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let mut command = Command::new(program);
    command
        .args(args)
        // A Rust child (the document renderer) ends a failure with its reason, not a
        // backtrace: its last line is what the job reports.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let max_memory = bounds.max_memory;
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: between fork and exec the closure only calls prctl, getppid and setrlimit,
    // which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // Killed when this process goes; if it went before the request took, stop here.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            let memory = libc::rlimit {
                rlim_cur: max_memory,
                rlim_max: max_memory,
            };
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &memory) != 0
                || libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = spawn(command).await.map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => RunError::Missing(name.clone()),
        _ => RunError::Io {
            program: name.clone(),
            error,
        },
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(RunError::Io {
            program: name,
            error: std::io::Error::other("no pipes to the child"),
        });
    };
    let work = async {
        let (out, err) = tokio::join!(
            read_bounded(stdout, bounds.max_output),
            read_bounded(stderr, MAX_STDERR)
        );
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(bounds.timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            // Kill and reap: no zombie, no runaway decoder.
            let _ = child.kill().await;
            return Err(RunError::Timeout {
                program: name,
                secs: bounds.timeout.as_secs(),
            });
        }
    };
    let io = |error| RunError::Io {
        program: name.clone(),
        error,
    };
    let (out, out_whole) = out.map_err(io)?;
    let (err, _) = err.map_err(io)?;
    let status = status.map_err(io)?;
    if !out_whole {
        return Err(RunError::TooMuchOutput {
            program: name,
            max: bounds.max_output,
        });
    }
    if !status.success() {
        return Err(RunError::Failed {
            detail: last_line(&err, file).unwrap_or_else(|| format!("{name} failed ({status})")),
        });
    }
    Ok(out)
}

/// A command to start, the runtime its child belongs to, and where to send the child.
type SpawnRequest = (Command, Handle, oneshot::Sender<std::io::Result<Child>>);

/// Starts `command` from the process's spawning thread, which never ends: a child's
/// parent-death signal follows the thread that forked it.
async fn spawn(command: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("spawner".to_owned())
            .spawn(move || {
                for (mut command, runtime, reply) in rx {
                    let _entered = runtime.enter();
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the spawning thread");
        Mutex::new(tx)
    });
    let (reply, child) = oneshot::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, Handle::current(), reply))
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?;
    child
        .await
        .map_err(|_| std::io::Error::other("the spawning thread is gone"))?
}

/// Reads `reader` to its end, keeping at most `max` bytes; says whether it all fit. Reading
/// goes on past the bound (and is discarded) so that the child never blocks on a full pipe;
/// the caller stops a child that writes too much by the timeout or by killing it.
async fn read_bounded(
    mut reader: impl AsyncRead + Unpin,
    max: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut whole = true;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = reader.read(&mut buffer).await?;
        if read == 0 {
            return Ok((kept, whole));
        }
        if kept.len() + read > max {
            whole = false;
            let room = max - kept.len();
            kept.extend_from_slice(&buffer[..room]);
        } else {
            kept.extend_from_slice(&buffer[..read]);
        }
    }
}

/// The last non-empty line of a tool's error output (a `note: ` line aside), as printable text without the input's
/// path and at most 200 characters: the tool's own words, not the file's bytes.
fn last_line(stderr: &[u8], file: &Path) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let path = file.display().to_string();
    // A Rust program's own note after a panic or a failed allocation says nothing of why.
    let line = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty() && !line.starts_with("note: "))?;
    let line = line
        .replace(&format!("file:{path}"), "the file")
        .replace(&path, "the file");
    let clean: String = line
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c.is_ascii() { c } else { '?' })
        .take(200)
        .collect();
    Some(clean.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            timeout: Duration::from_secs(5),
            max_memory: 256 * 1024 * 1024,
            max_output: 1024,
        }
    }

    fn args(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[tokio::test]
    async fn returns_the_output_of_a_run_that_succeeds() {
        let out = run(
            Path::new("sh"),
            &args(&["-c", "printf hello"]),
            Path::new("/x"),
            bounds(),
        )
        .await
        .unwrap();
        assert_eq!(out, b"hello");
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let error = run(
            Path::new("no-such-tool-here"),
            &[],
            Path::new("/x"),
            bounds(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "no-such-tool-here is not installed");
    }

    #[tokio::test]
    async fn a_failure_reports_its_last_line_without_the_path() {
        let error = run(
            Path::new("sh"),
            &args(&[
                "-c",
                "echo one >&2; echo 'file:/tmp/in.mp4: bad data' >&2; exit 3",
            ]),
            Path::new("/tmp/in.mp4"),
            bounds(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "the file: bad data");
    }

    #[tokio::test]
    async fn a_run_past_its_timeout_is_killed_and_reaped() {
        let started = std::time::Instant::now();
        let error = run(
            Path::new("sh"),
            &args(&["-c", "echo $$; exec sleep 30"]),
            Path::new("/x"),
            Bounds {
                timeout: Duration::from_millis(300),
                ..bounds()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, RunError::Timeout { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn output_past_its_bound_is_an_error() {
        let error = run(
            Path::new("sh"),
            &args(&["-c", "head -c 4096 /dev/zero"]),
            Path::new("/x"),
            bounds(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, RunError::TooMuchOutput { max: 1024, .. }));
    }

    #[tokio::test]
    async fn the_memory_cap_applies_to_the_child() {
        // Python cannot map 512 MiB under a 256 MiB cap: the allocation fails in the child.
        let error = run(
            Path::new("python3"),
            &args(&["-c", "b = bytearray(512 * 1024 * 1024)"]),
            Path::new("/x"),
            bounds(),
        )
        .await
        .unwrap_err();
        assert!(error.to_string().contains("MemoryError"), "{error}");
    }
}
