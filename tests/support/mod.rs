//! Support for the end-to-end tests: real `gateway` processes on loopback ports, each with
//! its own data directory, and a small HTTP client.

#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod disk;
pub mod form;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long a job may take to become final in a test.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// The name of the original of `bytes` stored by content: its content id.
pub fn original_name(bytes: &[u8]) -> String {
    use sha2::Digest;
    let sha256: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    common::record::content_id(&sha256).unwrap().to_string()
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The fixtures directory.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Which queue a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The gateway alone, workers in-process.
    Embedded,
    /// The gateway and two `worker` processes on RabbitMQ (127.0.0.1:5672, guest/guest), in a
    /// vhost of the test's own; records in SQLite.
    RabbitMq,
    /// As [`Backend::RabbitMq`], with the records in PostgreSQL (a schema of the test's own in
    /// the database [`database_url`] names) and the media in S3 (an s3s-fs server of the
    /// test's own): no process shares a directory.
    Distributed,
}

impl Backend {
    /// The queue kind `/readyz` reports.
    pub fn kind(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::RabbitMq | Backend::Distributed => "rabbitmq",
        }
    }

    /// The store kind `/readyz` reports.
    pub fn store_kind(self) -> &'static str {
        match self {
            Backend::Embedded | Backend::RabbitMq => "sqlite",
            Backend::Distributed => "postgres",
        }
    }

    /// The media storage kind `/readyz` reports.
    pub fn storage_kind(self) -> &'static str {
        match self {
            Backend::Embedded | Backend::RabbitMq => "dir",
            Backend::Distributed => "s3",
        }
    }

    /// Whether jobs go through RabbitMQ to worker processes.
    pub fn is_rabbitmq(self) -> bool {
        self != Backend::Embedded
    }
}

/// Which distributed back-ends a gateway uses; the others are the embedded defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topology {
    /// RabbitMQ and two worker processes, else the in-process queue.
    pub rabbitmq: bool,
    /// Records in PostgreSQL, else SQLite.
    pub postgres: bool,
    /// Media in S3, else the data directory.
    pub s3: bool,
}

/// Generates, for each `async fn name(backend: Backend)`, a test per back-end:
/// `embedded::name`, `rabbitmq::name` and `distributed::name`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $name() { super::$name(super::support::Backend::Embedded).await })*
        }
        mod rabbitmq {
            $(#[tokio::test] async fn $name() { super::$name(super::support::Backend::RabbitMq).await })*
        }
        mod distributed {
            $(#[tokio::test] async fn $name() { super::$name(super::support::Backend::Distributed).await })*
        }
    };
}

/// The PostgreSQL database the tests use: `THUMBNAILIFY_TEST_DATABASE_URL`, by default
/// `postgres://root:root@127.0.0.1:5432/test` (which `scripts/test` provides).
pub fn database_url() -> String {
    std::env::var("THUMBNAILIFY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://root:root@127.0.0.1:5432/test".to_owned())
}

/// Runs one SQL statement with `psql`, panicking with its output on failure.
pub fn psql(sql: &str) -> String {
    let output = Command::new("psql")
        .arg(database_url())
        .args(["-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .expect("psql is required for the PostgreSQL tests (scripts/test installs PostgreSQL)");
    assert!(
        output.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A real S3 server (s3s-fs, from crates.io; `scripts/test` installs it) on a loopback port,
/// serving one bucket from a temporary directory, where each object is a file.
pub struct S3Server {
    child: Option<Child>,
    root: tempfile::TempDir,
    /// Its port.
    pub port: u16,
    /// The bucket the test uses.
    pub bucket: String,
}

/// The credentials the test S3 server checks signatures with.
const S3_ACCESS_KEY: &str = "thumbnailify-test";
const S3_SECRET_KEY: &str = "thumbnailify-test-secret";

impl S3Server {
    /// Starts a server with one empty bucket.
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let bucket = format!("test-{}", uuid::Uuid::now_v7().simple());
        std::fs::create_dir(root.path().join(&bucket)).unwrap();
        let mut server = Self {
            child: None,
            root,
            port: free_port(),
            bucket,
        };
        server.spawn().await;
        server
    }

    /// (Re)starts the server process on the same port and directory.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(self.root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs is required for the S3 tests (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signals the test's own child process; a stopped one must go on to die.
            unsafe { libc::kill(libc::pid_t::try_from(child.id()).unwrap(), libc::SIGCONT) };
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Stops the server without closing its connections (SIGSTOP), or lets it go on
    /// (SIGCONT): a server that hangs.
    pub fn freeze(&self, frozen: bool) {
        let child = self.child.as_ref().expect("not running");
        let signal = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: signals the test's own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// The directory holding the bucket's objects.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.path().join(&self.bucket)
    }

    /// The `media:` section of a configuration file pointing at the bucket.
    pub fn yaml(&self) -> String {
        format!(
            "media: {{url: 's3://{}', s3: {{endpoint: 'http://127.0.0.1:{}', region: us-east-1, \
             access_key_id: {S3_ACCESS_KEY}, secret_access_key: {S3_SECRET_KEY}, allow_http: true}}}}",
            self.bucket, self.port
        )
    }

    /// The environment that points a gateway or worker process at the bucket, as the AWS
    /// tools are configured.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("THUMBNAILIFY_MEDIA_URL", format!("s3://{}", self.bucket)),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The environment for a store in `schema` (else SQLite) and media in `s3` (else the data
/// directory).
fn shared_env(schema: Option<&Schema>, s3: Option<&S3Server>) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some(schema) = schema {
        env.push(("THUMBNAILIFY_STORE_URL", schema.url()));
    }
    if let Some(s3) = s3 {
        env.extend(s3.env());
    }
    env
}

/// A PostgreSQL database of its own, in the server [`database_url`] names, that lives as long
/// as the value: for tests that cut the database off without touching the others'.
pub struct Database {
    /// Its name.
    pub name: String,
}

/// A fresh name for a test's own database or schema.
fn scratch_name() -> String {
    format!("test_{}", uuid::Uuid::now_v7().simple())
}

/// Runs one SQL statement with `psql`, ignoring the outcome (clean-up).
fn psql_quietly(sql: &str) {
    let _ = Command::new("psql")
        .arg(database_url())
        .args(["-qc", sql])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Database {
    /// Creates a fresh, empty database.
    pub fn create() -> Self {
        let name = scratch_name();
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        let server = database_url();
        let base = server
            .rsplit_once('/')
            .map_or(server.as_str(), |(base, _)| base);
        format!("{base}/{}", self.name)
    }

    /// Refuses new connections and ends the open ones (`allow` false), or lets them in again:
    /// an outage of this database alone.
    pub fn allow_connections(&self, allow: bool) {
        psql(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
            self.name
        ));
        if !allow {
            psql(&format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ));
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql_quietly(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A PostgreSQL schema that lives as long as the value.
pub struct Schema {
    /// Its name.
    pub name: String,
}

impl Schema {
    /// Creates a fresh, empty schema.
    pub fn create() -> Self {
        let name = scratch_name();
        psql(&format!("CREATE SCHEMA {name}"));
        Self { name }
    }

    /// The database URL with the schema as the search path.
    pub fn url(&self) -> String {
        format!(
            "{}?options=-c%20search_path%3D{}",
            database_url(),
            self.name
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        psql_quietly(&format!("DROP SCHEMA {} CASCADE", self.name));
    }
}

/// A RabbitMQ vhost that lives as long as the value.
pub struct Vhost {
    /// Its name.
    pub name: String,
}

impl Vhost {
    /// Creates a fresh vhost with all permissions for guest.
    pub fn create() -> Self {
        let name = format!("thumbnailify-test-{}", uuid::Uuid::now_v7());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self { name }
    }

    /// The AMQP URL of the vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.name)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `rabbitmqctl`, panicking with its output on failure.
pub fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl is required for the RabbitMQ tests (scripts/test installs RabbitMQ)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running gateway process, with its worker processes on RabbitMQ.
pub struct Gateway {
    child: Option<Child>,
    /// The worker processes (RabbitMQ only); `None` where one was killed.
    pub workers: Vec<Option<Child>>,
    queue_url: Option<String>,
    vhost: Option<Vhost>,
    /// The PostgreSQL schema holding the records (`None`: SQLite).
    pub schema: Option<Schema>,
    /// The S3 server holding the media (`None`: the data directory).
    pub s3: Option<S3Server>,
    /// The store URL and media settings the processes get (from `schema` and `s3`, or from
    /// the gateway this one joined).
    shared_env: Vec<(&'static str, String)>,
    /// Its data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Its base URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    config: PathBuf,
    port: u16,
    /// Where the gateway's standard error goes (`None`: the test's own).
    log: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An HTTP answer.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `media_id` of the record in the body.
    pub fn media_id(&self) -> String {
        self.json()["media_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no media_id in {}", self.json()))
            .to_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    }

    /// Asserts the status and that the body is the JSON error `code`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
    }
}

/// Sends `request` as it is to `address` on a new connection, and returns what comes back
/// until the connection closes (or 10 s pass). Owns its arguments, so it can be spawned.
pub async fn raw_exchange(address: String, request: Vec<u8>) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers and closes within 10 s");
    RawAnswer(answer)
}

/// An HTTP/1.1 answer as it came off the wire.
pub struct RawAnswer(pub Vec<u8>);

impl RawAnswer {
    /// The status code of the first response (HTTP/1.1, or 1.0 to a 1.0 request).
    pub fn status(&self) -> u16 {
        let text = String::from_utf8_lossy(&self.0);
        text.strip_prefix("HTTP/1.1 ")
            .or_else(|| text.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1 response: {text:?}"))
    }

    /// The body of the first response (after its head; `Content-Length` bytes).
    pub fn body(&self) -> &[u8] {
        let head_end = self
            .0
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("a complete head")
            + 4;
        let head = String::from_utf8_lossy(&self.0[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .map_or(0, |value| value.trim().parse().unwrap());
        &self.0[head_end..head_end + length]
    }

    /// Asserts the status and that the body is the JSON error `code` with a short message;
    /// returns the message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(
            self.status(),
            status,
            "{:?}",
            String::from_utf8_lossy(&self.0)
        );
        let json: Value = serde_json::from_slice(self.body()).unwrap_or_else(|error| {
            panic!("not JSON ({error}): {:?}", String::from_utf8_lossy(&self.0))
        });
        assert_eq!(json["error"]["code"], code, "{json}");
        let message = json["error"]["message"].as_str().unwrap().to_owned();
        assert!(!message.is_empty() && message.len() < 300, "{message}");
        message
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Gateway {
    /// Starts a gateway (and on RabbitMQ two workers) with the default configuration plus
    /// `yaml`.
    pub async fn start(backend: Backend, yaml: &str) -> Self {
        let distributed = backend == Backend::Distributed;
        let topology = Topology {
            rabbitmq: backend.is_rabbitmq(),
            postgres: distributed,
            s3: distributed,
        };
        Self::start_topology(topology, yaml).await
    }

    /// Starts a gateway on the back-ends `topology` names, each a fresh one of the test's own
    /// (on RabbitMQ, with two workers).
    pub async fn start_topology(topology: Topology, yaml: &str) -> Self {
        let vhost = topology.rabbitmq.then(Vhost::create);
        let url = vhost.as_ref().map(Vhost::url);
        let schema = topology.postgres.then(Schema::create);
        let s3 = match topology.s3 {
            true => Some(S3Server::start().await),
            false => None,
        };
        let env = shared_env(schema.as_ref(), s3.as_ref());
        let mut gateway = Self::launch(url, schema, s3, None, env, yaml).await;
        gateway.vhost = vhost;
        if topology.rabbitmq {
            gateway.start_worker();
            gateway.start_worker();
            gateway.wait_ready().await;
        }
        gateway
    }

    /// Starts the first gateway of a fleet on the queue at `queue_url` (a broker the test
    /// owns), with its records in a PostgreSQL schema and its media in an S3 server of its
    /// own, and two workers.
    pub async fn start_fleet(queue_url: String, yaml: &str) -> Self {
        let schema = Schema::create();
        let s3 = S3Server::start().await;
        let env = shared_env(Some(&schema), Some(&s3));
        let mut gateway =
            Self::launch(Some(queue_url), Some(schema), Some(s3), None, env, yaml).await;
        gateway.start_worker();
        gateway.start_worker();
        gateway.wait_ready().await;
        gateway
    }

    /// Starts another gateway process beside this one, sharing its queue, store and media
    /// (and, with media in the data directory, its data directory): a second gateway of the
    /// same fleet, on a port of its own. It owns none of the shared services.
    pub async fn join(&self, yaml: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let config = temp.path().join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut gateway = Self {
            child: None,
            workers: Vec::new(),
            queue_url: self.queue_url.clone(),
            vhost: None,
            schema: None,
            s3: None,
            shared_env: self.shared_env.clone(),
            data_dir: self.data_dir.clone(),
            base: String::new(),
            config,
            port: free_port(),
            log: None,
            _temp: Some(temp),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(64)
                .build_http(),
        };
        gateway.spawn().await;
        gateway.wait_ready().await;
        gateway
    }

    /// Waits until `/readyz` says 200 (on RabbitMQ: connected to the broker), or 401 (API
    /// keys are configured: the gateway answers, and uploads wait in its outbox until the
    /// broker does).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while ![StatusCode::OK, StatusCode::UNAUTHORIZED]
            .contains(&self.get("/readyz").await.status)
        {
            assert!(
                Instant::now() < deadline,
                "the gateway did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a gateway alone, on the queue at `queue_url` (embedded when `None`).
    pub async fn start_with_queue(queue_url: Option<String>, yaml: &str) -> Self {
        Self::launch(queue_url, None, None, None, Vec::new(), yaml).await
    }

    /// Starts a gateway alone, on the queue at `queue_url`, with `env` given to it and to the
    /// workers it starts.
    pub async fn start_with_queue_env(
        queue_url: String,
        env: Vec<(&'static str, String)>,
        yaml: &str,
    ) -> Self {
        Self::launch(Some(queue_url), None, None, None, env, yaml).await
    }

    /// Starts a gateway alone, embedded, with its records in PostgreSQL at `store_url`.
    pub async fn start_with_store(store_url: String, yaml: &str) -> Self {
        let env = vec![("THUMBNAILIFY_STORE_URL", store_url)];
        Self::launch(None, None, None, None, env, yaml).await
    }

    /// Starts a gateway alone, on the embedded queue, with its records in `schema` and its
    /// media in `s3`.
    pub async fn start_on(schema: Schema, s3: S3Server, yaml: &str) -> Self {
        let env = shared_env(Some(&schema), Some(&s3));
        Self::launch(None, Some(schema), Some(s3), None, env, yaml).await
    }

    /// Starts a gateway alone, embedded, logging at `rust_log` into a file ([`Gateway::log`]).
    pub async fn start_logging(yaml: &str, rust_log: &str) -> Self {
        let env = vec![("RUST_LOG", rust_log.to_owned())];
        let mut gateway = Self::prepare(None, None, None, None, env, yaml);
        gateway.log = Some(gateway.config.with_file_name("gateway.log"));
        gateway.spawn().await;
        gateway
    }

    /// What the gateway has logged so far (started by [`Gateway::start_logging`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.as_ref().expect("not logging to a file"))
            .unwrap_or_default()
    }

    /// Starts a gateway alone, embedded, with its data in `data_dir`.
    pub async fn start_in(data_dir: PathBuf, yaml: &str) -> Self {
        Self::launch(None, None, None, Some(data_dir), Vec::new(), yaml).await
    }

    async fn launch(
        queue_url: Option<String>,
        schema: Option<Schema>,
        s3: Option<S3Server>,
        data_dir: Option<PathBuf>,
        shared_env: Vec<(&'static str, String)>,
        yaml: &str,
    ) -> Self {
        let mut gateway = Self::prepare(queue_url, schema, s3, data_dir, shared_env, yaml);
        gateway.spawn().await;
        gateway
    }

    /// A gateway not yet started.
    fn prepare(
        queue_url: Option<String>,
        schema: Option<Schema>,
        s3: Option<S3Server>,
        data_dir: Option<PathBuf>,
        shared_env: Vec<(&'static str, String)>,
        yaml: &str,
    ) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let data_dir = data_dir.unwrap_or_else(|| temp.path().join("data"));
        let config = temp.path().join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        Self {
            child: None,
            workers: Vec::new(),
            queue_url,
            vhost: None,
            shared_env,
            schema,
            s3,
            data_dir,
            base: String::new(),
            config,
            port: free_port(),
            log: None,
            _temp: Some(temp),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(64)
                .build_http(),
        }
    }

    /// A command for one of the binaries, configured like this gateway.
    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(binary);
        command.arg("--config").arg(&self.config);
        self.configure(&mut command);
        command
    }

    /// Gives `command` this gateway's environment.
    fn configure(&self, command: &mut Command) {
        command
            .env("THUMBNAILIFY_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("THUMBNAILIFY_DATA_DIR", &self.data_dir)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null());
        match &self.queue_url {
            Some(url) => command.env("THUMBNAILIFY_QUEUE_URL", url),
            None => command.env_remove("THUMBNAILIFY_QUEUE_URL"),
        };
        // Tests stop gateways often: no drain delay after SIGTERM, unless the test's own
        // configuration sets one.
        let yaml = std::fs::read_to_string(&self.config).unwrap_or_default();
        if !yaml.contains("drain_secs") {
            command.env("THUMBNAILIFY_SERVER__DRAIN_SECS", "0");
        }
        command.env_remove("DATABASE_URL");
        for name in [
            "THUMBNAILIFY_STORE_URL",
            "THUMBNAILIFY_MEDIA_URL",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ALLOW_HTTP",
        ] {
            command.env_remove(name);
        }
        for (name, value) in &self.shared_env {
            command.env(name, value);
        }
    }

    /// Starts one more worker process; returns its index in [`Gateway::workers`].
    pub fn start_worker(&mut self) -> usize {
        self.spawn_worker(self.command(worker_binary()))
    }

    /// Starts a worker process limited to `kib` KiB of address space (`ulimit -v`), as a
    /// worker on a small machine or in a tight container: an allocation past it kills it.
    pub fn start_worker_with_address_space(&mut self, kib: u64) -> usize {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
            .arg(worker_binary())
            .arg("--config")
            .arg(&self.config)
            .stderr(Stdio::null());
        self.configure(&mut command);
        self.spawn_worker(command)
    }

    fn spawn_worker(&mut self, mut command: Command) -> usize {
        let child = command.spawn().expect("cannot start the worker binary");
        self.workers.push(Some(child));
        self.workers.len() - 1
    }

    /// Kills worker `index` with SIGKILL.
    pub fn kill_worker(&mut self, index: usize) {
        if let Some(mut child) = self.workers[index].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM to worker `index` and waits; returns whether it exited successfully.
    pub fn terminate_worker(&mut self, index: usize) -> bool {
        let mut child = self.workers[index].take().expect("not running");
        terminate(&mut child)
    }

    /// Replaces every worker that has died by a new one (a supervisor's `restart: always`);
    /// returns how many had died.
    pub fn restart_dead_workers(&mut self, restart: impl Fn(&mut Self) -> usize) -> usize {
        let dead: Vec<usize> = (0..self.workers.len())
            .filter(|&i| {
                self.workers[i]
                    .as_mut()
                    .is_some_and(|child| child.try_wait().unwrap().is_some())
            })
            .collect();
        for &i in &dead {
            self.workers[i] = None;
            restart(self);
        }
        dead.len()
    }

    /// Waits until `/readyz` answers 503 `not_ready` naming `dependency` (a broker out of
    /// reach), within 20 s.
    pub async fn wait_not_ready(&self, dependency: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self.get("/readyz").await;
            if ready.status == 503 {
                ready.assert_error(503, "not_ready");
                let message = ready.json()["error"]["message"].to_string();
                assert!(message.contains(dependency), "{message}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "readyz stayed ready without {dependency}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/readyz` answers 200 again, within 20 s.
    pub async fn wait_ready_again(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.get("/readyz").await.status != 200 {
            assert!(Instant::now() < deadline, "readyz did not recover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the record of `media_id` until it leaves `Processing`, replacing every worker
    /// that dies meanwhile by `restart`; returns the record and how many workers died (for a
    /// job that kills its worker).
    pub async fn wait_final_restarting(
        &mut self,
        media_id: &str,
        restart: impl Fn(&mut Self) -> usize,
    ) -> (Value, usize) {
        let mut deaths = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            deaths += self.restart_dead_workers(&restart);
            let record = self.get(&format!("/images/{media_id}")).await.json();
            if record["state"] != "Processing" {
                return (record, deaths);
            }
            assert!(
                Instant::now() < deadline,
                "{record} after {deaths} worker deaths"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// (Re)starts the gateway process on the same port and data directory.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = self.command(env!("CARGO_BIN_EXE_gateway"));
        if let Some(path) = &self.log {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            command.stderr(file);
        }
        let child = command.spawn().expect("cannot start the gateway binary");
        self.child = Some(child);
        self.base = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = self
                .try_request(Method::GET, "/healthz", &[], Bytes::new())
                .await
                && answer.status == StatusCode::OK
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the gateway exited at start-up: {status}");
            }
            assert!(Instant::now() < deadline, "the gateway did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The gateway's `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How many file descriptors the gateway process has open.
    pub fn open_fds(&self) -> usize {
        let pid = self.child.as_ref().expect("not running").id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    /// Sends `request` as it is on a new connection, and returns what the gateway answers until
    /// it closes the connection (or 10 s pass).
    pub async fn raw(&self, request: &[u8]) -> RawAnswer {
        raw_exchange(self.address(), request.to_vec()).await
    }

    /// The gateway process's peak resident memory (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("not running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// The gateway process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("not running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Replaces the configuration file the processes read (from their next start).
    pub fn rewrite_config(&self, yaml: &str) {
        std::fs::write(&self.config, yaml).unwrap();
    }

    /// Takes the gateway's process out of its hands, to be signalled and waited for by the
    /// test; [`Gateway::spawn`] starts another.
    pub fn take_child(&mut self) -> Child {
        self.child.take().expect("not running")
    }

    /// Sends SIGTERM to worker `index` without waiting for it.
    pub fn signal_worker(&self, index: usize) {
        let child = self.workers[index].as_ref().expect("not running");
        sigterm(child);
    }

    /// Waits up to `limit` for worker `index` to exit; whether it exited with status 0, or
    /// `None` if it is still running.
    pub async fn wait_worker_exit(&mut self, index: usize, limit: Duration) -> Option<bool> {
        let child = self.workers[index].as_mut().expect("not running");
        let exited = wait_exit(child, limit).await;
        if exited.is_some() {
            self.workers[index] = None;
        }
        exited
    }

    /// Sends SIGTERM and waits for the process; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let mut child = self.child.take().expect("not running");
        terminate(&mut child)
    }

    async fn try_request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, Box<dyn std::error::Error + Send + Sync>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        self.try_request(method, path, headers, body.into())
            .await
            .unwrap_or_else(|error| panic!("{path}: {error:?}"))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    /// `POST /images` with `bytes` in base64 and `content_type`; `None` when the gateway
    /// cannot be reached (not running, or the connection broke).
    pub async fn try_upload(&self, content_type: &str, bytes: &[u8]) -> Option<Answer> {
        self.try_request(
            Method::POST,
            "/images",
            &[("content-type", content_type)],
            Bytes::from(STANDARD.encode(bytes)),
        )
        .await
        .ok()
    }

    /// `GET path`; `None` when the gateway cannot be reached.
    pub async fn try_get(&self, path: &str) -> Option<Answer> {
        self.try_request(Method::GET, path, &[], Bytes::new())
            .await
            .ok()
    }

    /// `POST /images` with `bytes` in base64 and `content_type`.
    pub async fn upload(&self, content_type: &str, bytes: &[u8]) -> Answer {
        self.request(
            Method::POST,
            "/images",
            &[("content-type", content_type)],
            STANDARD.encode(bytes),
        )
        .await
    }

    /// `POST /images` with a JSON envelope (`data`, `media_type` and any other member).
    pub async fn post_json(&self, envelope: &Value) -> Answer {
        self.request(
            Method::POST,
            "/images",
            &[("content-type", "application/json")],
            envelope.to_string(),
        )
        .await
    }

    /// Uploads a fixture, asserts 202, returns the media id.
    pub async fn upload_fixture(&self, name: &str) -> String {
        let answer = self.upload(media_type_of(name), &fixture(name)).await;
        assert_eq!(
            answer.status,
            StatusCode::ACCEPTED,
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.media_id()
    }

    /// Polls the record every 10 ms until `accept` says so; returns it.
    pub async fn wait_record(&self, media_id: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + JOB_TIMEOUT;
        loop {
            let answer = self.get(&format!("/images/{media_id}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{media_id}");
            let record = answer.json();
            if accept(&record) {
                return record;
            }
            assert!(Instant::now() < deadline, "{media_id}: {record}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls the record until it is final; returns it.
    pub async fn wait_final(&self, media_id: &str) -> Value {
        self.wait_record(media_id, |record| record["state"] != "Processing")
            .await
    }

    /// How many records `GET /images` lists (up to a page of 1000).
    pub async fn record_count(&self) -> usize {
        let page = self.get("/images?limit=1000").await.json();
        page["items"].as_array().expect("a page of records").len()
    }

    /// The thumbnail's raw bytes (asks with `Accept: image/*`).
    pub async fn thumbnail(&self, media_id: &str) -> Answer {
        self.request(
            Method::GET,
            &format!("/images/{media_id}/thumbnail"),
            &[("accept", "image/*")],
            Bytes::new(),
        )
        .await
    }

    /// Where the gateway keeps the thumbnail of `media_id`.
    pub fn thumbnail_path(&self, media_id: &str) -> PathBuf {
        self.media_dir().join("thumbnails").join(media_id)
    }

    /// Where the gateway keeps the raw file of `media_id` when it is stored by media id
    /// (`dedup: false`, or a fetched source).
    pub fn raw_path(&self, media_id: &str) -> PathBuf {
        self.media_dir().join("raw").join(media_id)
    }

    /// Where the gateway keeps the original of `bytes` when stored by content (`dedup`).
    pub fn original_path(&self, bytes: &[u8]) -> PathBuf {
        self.media_dir().join("raw").join(original_name(bytes))
    }

    /// Where the media objects are as files: the data directory, or the S3 server's
    /// directory of the bucket (s3s-fs keeps each object as a file).
    pub fn media_dir(&self) -> PathBuf {
        match &self.s3 {
            Some(s3) => s3.bucket_dir(),
            None => self.data_dir.clone(),
        }
    }

    /// The names of the objects in `folder` (`raw` or `thumbnails`); none when nothing was
    /// ever written there.
    pub fn object_names(&self, folder: &str) -> Vec<String> {
        match std::fs::read_dir(self.media_dir().join(folder)) {
            Ok(entries) => entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => panic!("{folder}: {error}"),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        for mut child in self
            .child
            .take()
            .into_iter()
            .chain(self.workers.drain(..).flatten())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM to `child` and waits; returns whether it exited successfully.
/// Sends SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits up to `limit` for `child` to exit: whether its status is 0, or `None` if it still
/// runs.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> Option<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.success());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn terminate(child: &mut Child) -> bool {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap().success()
}

/// The `worker` binary, built beside the `gateway` binary.
fn worker_binary() -> &'static str {
    env!("CARGO_BIN_EXE_worker")
}

/// A large PNG (every row alike, so it is small on disk) that takes a worker a noticeable
/// time: long enough to be caught in the middle of it, or to keep a worker busy.
pub fn slow_png() -> Vec<u8> {
    use image::ImageEncoder;
    let (width, height) = (8000u32, 6000u32);
    let row: Vec<u8> = (0..width)
        .flat_map(|x| [(x % 256) as u8, (x / 32 % 256) as u8, 128])
        .collect();
    let pixels = row.repeat(height as usize);
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        std::io::Cursor::new(&mut png),
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Up,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
    .unwrap();
    png
}

/// Waits until `path` no longer exists (files are removed just after records change).
pub async fn wait_gone(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() {
        assert!(Instant::now() < deadline, "{} still exists", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The media type of a fixture, from its extension.
pub fn media_type_of(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap() {
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "tiff" => "image/tiff",
        "bmp" => "image/bmp",
        "jxl" => "image/jxl",
        "heic" => "image/heic",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        other => panic!("no media type for .{other}"),
    }
}

/// Mean absolute difference, per channel on a 0–255 scale, between a thumbnail and Pillow's
/// reference thumbnail of the same fixture (`expected/<stem>.png`), colour premultiplied by
/// alpha. The reference is resized to the thumbnail's size first if they differ by rounding.
pub fn difference_from_expected(thumbnail: &image::DynamicImage, fixture: &str) -> f64 {
    let stem = fixture.rsplit_once('.').unwrap().0;
    let expected = image::open(fixtures_dir().join("expected").join(format!("{stem}.png")))
        .unwrap()
        .to_rgba8();
    let ours = thumbnail.to_rgba8();
    let (w, h) = ours.dimensions();
    let (ew, eh) = expected.dimensions();
    assert!(
        w.abs_diff(ew) <= 1 && h.abs_diff(eh) <= 1,
        "{fixture}: {w}×{h}, expected {ew}×{eh}"
    );
    let expected = if (ew, eh) == (w, h) {
        expected
    } else {
        image::imageops::resize(&expected, w, h, image::imageops::FilterType::Triangle)
    };
    mean_difference(&ours, &expected)
}

/// Mean absolute difference, per channel on a 0–255 scale, between two images of the same
/// size, colour premultiplied by alpha.
pub fn mean_difference(ours: &image::RgbaImage, expected: &image::RgbaImage) -> f64 {
    let premultiplied = |p: &image::Rgba<u8>| {
        let a = f64::from(p[3]) / 255.0;
        [
            f64::from(p[0]) * a,
            f64::from(p[1]) * a,
            f64::from(p[2]) * a,
            f64::from(p[3]),
        ]
    };
    let total: f64 = ours
        .pixels()
        .zip(expected.pixels())
        .map(|(a, b)| {
            let (a, b) = (premultiplied(a), premultiplied(b));
            (0..4).map(|i| (a[i] - b[i]).abs()).sum::<f64>()
        })
        .sum();
    total / f64::from(ours.width() * ours.height() * 4)
}
