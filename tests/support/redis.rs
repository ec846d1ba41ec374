//! A Redis server of the test's own: `redis-server` on a free loopback port, its append-only
//! file in a temporary directory with `appendfsync always` (every acknowledged write on disk,
//! so a SIGKILL loses nothing acknowledged), never the machine's Redis; plain, or over TLS
//! with a certificate from a CA of the test's own (made with `openssl`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// A running (or killed, to be started again) Redis server.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    tls: bool,
}

impl RedisServer {
    /// Starts a server with an empty data directory.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a server that speaks TLS only, its certificate (for 127.0.0.1) signed by a CA
    /// whose certificate is [`RedisServer::ca_file`].
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let mut server = Self {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            tls,
        };
        if tls {
            server.make_certificates();
        }
        server.spawn();
        server
    }

    /// The CA certificate that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A CA, and a server certificate for 127.0.0.1 it signs.
    fn make_certificates(&self) {
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let key = ["-newkey", "rsa:2048", "-nodes", "-days", "2"];
        openssl(
            &[
                &["req", "-x509", "-subj", "/CN=test-ca"][..],
                &key,
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-subj", "/CN=127.0.0.1"][..],
                &key[..3],
                &["-keyout", "key.pem", "-out", "req.csr"],
            ]
            .concat(),
        );
        std::fs::write(
            self.dir.path().join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
    }

    /// (Re)starts the server on the same port and directory: it reloads its append-only file.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1"]);
        if self.tls {
            command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem"])
                .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &self.port.to_string()]);
        }
        let child = command
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for the Redis tests (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What `redis-cli` needs to reach the server.
    fn cli_args(&self) -> Vec<String> {
        let mut args = vec!["-p".to_owned(), self.port.to_string()];
        if self.tls {
            args.extend(["--tls".to_owned(), "--cacert".to_owned()]);
            args.push(self.ca_file().display().to_string());
        }
        args
    }

    /// Whether the server answers PING.
    fn answers(&self) -> bool {
        Command::new("redis-cli")
            .args(self.cli_args())
            .arg("ping")
            .output()
            .is_ok_and(|output| output.stdout.starts_with(b"PONG"))
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Runs `redis-cli` against the server and returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(self.cli_args())
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Its URL: `redis://`, or `rediss://` over TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
