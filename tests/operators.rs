//! What the people who run the service see, on the real binary: the configuration layered
//! from file, environment and secret files, printed with secrets masked; JSON log lines; and
//! request ids, kept or made, echoed and logged.

mod support;

use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Gateway, S3Server, Schema, media_type_of};

/// Runs `gateway ARGS` with only `env` set of the configuration variables; returns its exit
/// code, standard output and standard error.
fn gateway(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command.args(args).current_dir(dir).stdin(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("THUMBNAILIFY_") || name.starts_with("AWS_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn print_config_shows_every_layer_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "limits: {max_pixels: 10, max_variants: 3}\ncallbacks: {secret: whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("database-url"),
        "postgres://app:db-password@db.internal/thumbs\n",
    )
    .unwrap();
    let (code, out, err) = gateway(
        &["--print-config"],
        &[
            ("THUMBNAILIFY_LIMITS__MAX_PIXELS", "50000000"),
            ("THUMBNAILIFY_STORE__URL_FILE", "database-url"),
            ("THUMBNAILIFY_AUTH__API_KEYS", "[key-one-secret]"),
            ("THUMBNAILIFY_LOGGING__FORMAT", "json"),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-value"),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let config: Value = serde_norway::from_str(&out).unwrap();
    assert_eq!(
        config["limits"]["max_pixels"], 50_000_000,
        "the environment"
    );
    assert_eq!(config["limits"]["max_variants"], 3, "the file");
    assert_eq!(config["listen"], "127.0.0.1:8080", "the defaults");
    assert_eq!(config["logging"]["format"], "json");
    assert_eq!(
        config["store"]["url"], "postgres://app:***@db.internal/thumbs",
        "the secret file, its password masked"
    );
    assert_eq!(config["auth"]["api_keys"][0], "***");
    assert_eq!(config["callbacks"]["secret"], "***");
    assert_eq!(config["media"]["s3"]["secret_access_key"], "***");
    for secret in [
        "db-password",
        "key-one-secret",
        "c2VjcmV0",
        "aws-secret-value",
    ] {
        assert!(!out.contains(secret), "{secret} printed");
    }
}

#[test]
fn a_bad_key_or_value_in_the_environment_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value, named) in [
        ("THUMBNAILIFY_LIMITS__MAX_PIXLES", "1", "max_pixles"),
        ("THUMBNAILIFY_LIMITS__MAX_PIXELS", "lots", "MAX_PIXELS"),
        ("THUMBNAILIFY_LOGGING__FORMAT", "xml", "FORMAT"),
    ] {
        let (code, out, err) = gateway(&["--print-config"], &[(name, value)], dir.path());
        assert_eq!(code, 2, "{name}: {out}");
        assert!(err.contains("cannot load the configuration"), "{err}");
        assert!(err.contains(named), "{name}: {err}");
    }
}

/// A worker that stops while idle says it has no job in hand, however many it finished.
#[tokio::test]
async fn an_idle_worker_stopping_has_nothing_in_flight() {
    let mut gateway = Gateway::start_logging("logging: {format: json}", "info").await;
    for _ in 0..3 {
        let id = gateway.upload_fixture("png-rgba.png").await;
        assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(gateway.terminate(), "the gateway stops cleanly");
    let log = gateway.log();
    let stopping: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("worker stopping"))
        })
        .collect();
    assert!(!stopping.is_empty(), "{log}");
    for line in stopping {
        assert_eq!(line["in_flight"], 0, "{line}");
    }
}

/// A fresh machine is set up with exactly two commands, the README's: one runs the service,
/// one runs every test; and CI runs the second.
#[test]
fn the_readme_sets_up_with_two_commands_and_ci_runs_the_test_one() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let start = readme.find("## Set-up on a fresh machine").unwrap();
    let end = start + readme[start..].find("\n## API").unwrap();
    let commands: Vec<&str> = readme[start..end]
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim())
        .collect();
    assert_eq!(commands, ["scripts/run", "scripts/test"]);
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).unwrap();
    assert!(ci.lines().any(|line| line.trim() == "scripts/test"), "{ci}");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_the_media_id() {
    let gateway = Gateway::start_logging("logging: {format: json}", "info,gateway=debug").await;

    // A presented id is kept and echoed; a hostile one is replaced.
    let answer = gateway
        .request(
            hyper::Method::GET,
            "/healthz",
            &[("x-request-id", "edge-7:abc")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(answer.header("x-request-id").as_deref(), Some("edge-7:abc"));
    let answer = gateway
        .request(
            hyper::Method::GET,
            "/healthz",
            &[("x-request-id", "a\"}{\"level\":\"ERROR\"")],
            bytes::Bytes::new(),
        )
        .await;
    let made = answer.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");

    let name = "jpeg-baseline.jpg";
    let body = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        support::fixture(name),
    );
    let answer = gateway
        .request(
            hyper::Method::POST,
            "/images",
            &[
                ("content-type", media_type_of(name)),
                ("x-request-id", "upload-42"),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status, 202);
    assert_eq!(answer.header("x-request-id").as_deref(), Some("upload-42"));
    let media_id = answer.media_id();
    gateway.wait_final(&media_id).await;

    let log = gateway.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(line.get(key).is_some(), "{key} missing: {line}");
        }
    }
    let accepted = lines
        .iter()
        .find(|line| line["message"] == "upload accepted")
        .unwrap_or_else(|| panic!("no 'upload accepted' line in\n{log}"));
    assert_eq!(accepted["media_id"], media_id.as_str());
    let request = accepted["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == "request"))
        .unwrap_or_else(|| panic!("no request span: {accepted}"));
    assert_eq!(request["request_id"], "upload-42", "{accepted}");
    assert_eq!(request["route"], "/images", "{accepted}");
    assert_eq!(request["method"], "POST", "{accepted}");
    assert!(
        !log.contains("\"level\":\"ERROR\"\""),
        "a presented id reached the log unchecked"
    );
}

/// The metric names a PromQL expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("thumbnailify_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

/// A callback receiver on loopback that answers every request 204; returns its URL.
async fn callback_receiver() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                let _ = stream.read(&mut buffer).await;
                let answer = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
                let _ = stream.write_all(answer).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn metrics_follow_prometheus_naming_and_the_dashboard_charts_them() {
    // Every family gets a sample: a completed job with a delivered callback, a refusal and a
    // duplicate.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let yaml = format!("callbacks: {{secret: {secret}, allowed_hosts: ['127.0.0.1']}}");
    let gateway = Gateway::start_with_queue(None, &yaml).await;
    let name = "jpeg-baseline.jpg";
    let answer = gateway
        .post_json(&serde_json::json!({
            "data": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                support::fixture(name),
            ),
            "media_type": media_type_of(name),
            "callback_url": callback_receiver().await,
        }))
        .await;
    assert_eq!(answer.status, 202, "{}", answer.json());
    let id = answer.media_id();
    gateway.wait_final(&id).await;
    let duplicate = gateway.upload_fixture(name).await;
    gateway.wait_final(&duplicate).await;
    let refused = gateway.upload("image/png", &support::fixture(name)).await;
    assert_eq!(refused.status, 415);
    let delivered = "thumbnailify_callback_deliveries_total{outcome=\"delivered\"} 1";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = String::from_utf8(gateway.get("/metrics").await.body.to_vec()).unwrap();
        if text.contains(delivered) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    // Names: counters' samples end `_total`; the histograms carry their unit.
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let mut words = line.split(' ').skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        assert!(name.starts_with("thumbnailify_"), "{line}");
        if kind == "counter" {
            assert!(
                text.lines()
                    .all(|sample| !sample.starts_with(&format!("{name} "))),
                "{name}: a counter's sample without _total"
            );
        }
    }
    let size = "thumbnailify_upload_size_bytes_count{media_type=\"image/jpeg\"} 2";
    let duration = "thumbnailify_job_duration_seconds_count{media_type=\"image/jpeg\"} 2";
    for sample in [size, duration] {
        assert!(text.contains(sample), "{sample} not in\n{text}");
    }

    // Every metric the dashboard queries is one the gateway exports.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            for name in metric_names(target["expr"].as_str().unwrap()) {
                let exported = name
                    .strip_suffix("_bucket")
                    .or_else(|| name.strip_suffix("_sum"))
                    .or_else(|| name.strip_suffix("_count"))
                    .or_else(|| name.strip_suffix("_total"))
                    .unwrap_or(&name);
                assert!(
                    text.contains(&format!("# TYPE {exported} ")),
                    "{}: {name} is not exported",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 10, "{queried}");
}

#[tokio::test]
async fn the_contract_is_served_and_every_operation_in_it_is_routed() {
    let gateway = Gateway::start_with_queue(None, "").await;
    let answer = gateway.get("/openapi.json").await;
    assert_eq!(answer.status, 200);
    let document = answer.json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            // The path's parameters with values that parse, so that the route is reached.
            let concrete = path
                .replace("{media_id}", "019abf5e-0000-7000-8000-000000000000")
                .replace("{name}", "100x100");
            let method = hyper::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let answer = gateway
                .request(method.clone(), &concrete, &[], bytes::Bytes::new())
                .await;
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            let code = body["error"]["code"].clone();
            assert!(
                code != "no_route" && code != "method_not_allowed",
                "{method} {path} is documented but not routed"
            );
            let documented = operation["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(answer.status.as_str()),
                "{method} {path}: {} is not documented",
                answer.status
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 13, "{:?}", paths.keys().collect::<Vec<_>>());
    // A form is read in order: its text fields apply to the files after them, so the
    // document lists them first (Schemathesis sent them after the files when it did not).
    let form = &document["components"]["schemas"]["UploadForm"]["properties"];
    let order: Vec<&String> = form.as_object().unwrap().keys().collect();
    assert_eq!(
        order.last().map(|key| key.as_str()),
        Some("image"),
        "{order:?}"
    );
    // The upload's links lead to the record's operations.
    let text = document.to_string();
    for link in ["get_record", "get_events", "get_thumbnail", "delete_record"] {
        assert!(
            text.contains(&format!("\"operationId\":\"{link}\"")),
            "{link}"
        );
    }

    let page = gateway.get("/docs/").await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    let script = gateway.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status, 200);
    assert!(script.body.len() > 100_000, "the assets are in the binary");
}

/// The (status, code) pairs the README names: its error table's rows (`| 415 |
/// \`media_type_mismatch\` |`) and the answers its prose gives (`` `404 not_found` ``).
fn readme_errors() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut errors = Vec::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() > 3 && cells[1].len() == 3 && cells[1].bytes().all(|b| b.is_ascii_digit()) {
            for code in cells[2].split(',') {
                let code = code.trim().trim_matches('`');
                if !code.is_empty() {
                    errors.push((cells[1].to_owned(), code.to_owned()));
                }
            }
        }
        for quoted in line.split('`').skip(1).step_by(2) {
            if let Some((status, code)) = quoted.split_once(' ')
                && status.len() == 3
                && status.bytes().all(|b| b.is_ascii_digit())
                && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                errors.push((status.to_owned(), code.to_owned()));
            }
        }
    }
    errors
}

#[tokio::test]
async fn every_error_the_readme_names_is_in_the_contract_with_its_status() {
    // Everything on, so that the contract offers every operation's every answer.
    let gateway = Gateway::start_with_queue(None, FULL).await;
    let document = gateway.get("/openapi.json").await.json();
    let errors = readme_errors();
    assert!(errors.len() >= 30, "{errors:?}");
    let mut missing = Vec::new();
    for (status, code) in errors {
        let documented = document["paths"].as_object().unwrap().values().any(|item| {
            item.as_object().unwrap().values().any(|operation| {
                operation["responses"][&status]["description"]
                    .as_str()
                    .is_some_and(|text| text.contains(&format!("`{code}`")))
            })
        });
        if !documented {
            missing.push(format!("{status} {code}"));
        }
    }
    assert!(
        missing.is_empty(),
        "in the README, not in the contract: {missing:?}"
    );
}

/// A configuration with everything on: API keys, callbacks.
const FULL: &str = "auth: {api_keys: [contract-key]}\n\
                    callbacks: {secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n";

/// The contract offers what the running service accepts: with callbacks off no
/// `callback_url`, without keys no 401, without the `heif` feature no AVIF or HEIC, without
/// FFmpeg no video; with them on, all of it.
#[tokio::test]
async fn the_contract_offers_only_what_the_service_accepts() {
    let plain = Gateway::start_with_queue(None, "video: {ffprobe: /nonexistent/ffprobe}").await;
    let text = String::from_utf8_lossy(&plain.get("/openapi.json").await.body).into_owned();
    assert!(!text.contains("callback_url"));
    assert!(!text.contains("\"401\""));
    assert!(!text.contains("\"video/mp4\":"), "no video request body");
    let heif = cfg!(feature = "heif");
    assert_eq!(text.contains("\"image/avif\":"), heif, "AVIF thumbnails");
    let document: Value = serde_json::from_str(&text).unwrap();
    let envelope = document["components"]["schemas"]["DataEnvelope"].to_string();
    assert!(envelope.contains("\"image/png\""), "{envelope}");
    assert_eq!(envelope.contains("\"image/heic\""), heif, "{envelope}");
    assert!(!envelope.contains("video/mp4"), "{envelope}");
    // Callbacks off: a schema-valid request is one the service accepts.
    let answer = plain
        .request(
            hyper::Method::POST,
            "/images?callback_url=https://example.org/hook",
            &[("content-type", "image/png")],
            "aGk=",
        )
        .await;
    answer.assert_error(400, "callback_not_allowed");

    let full = Gateway::start_with_queue(None, FULL).await;
    let text = String::from_utf8_lossy(&full.get("/openapi.json").await.body).into_owned();
    assert!(text.contains("callback_url"));
    assert!(text.contains("\"401\""));
    assert!(text.contains("\"video/mp4\":"));
}

/// With media storage hanging (its server stopped, connections open), `/readyz` still answers
/// at once, from the last background check: 503 naming media storage within a few seconds,
/// never after a client's timeout. Uploads are refused at once with 503 and `Retry-After`
/// once it has failed two checks in a row, and both recover when it answers again.
#[tokio::test]
async fn readiness_answers_at_once_while_media_storage_hangs() {
    let gateway = Gateway::start_on(Schema::create(), S3Server::start().await, "").await;
    assert_eq!(gateway.get("/readyz").await.status, 200);
    let s3 = gateway.s3.as_ref().unwrap();
    s3.freeze(true);
    // What a probe with a 3-second timeout would see.
    let probe = |path: &'static str| {
        let gateway = &gateway;
        async move {
            tokio::time::timeout(Duration::from_secs(3), gateway.get(path))
                .await
                .unwrap_or_else(|_| panic!("{path} did not answer within 3 s"))
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = probe("/readyz").await;
        if ready.status == 503 {
            ready.assert_error(503, "not_ready");
            let message = ready.json()["error"]["message"].to_string();
            assert!(message.contains("media storage"), "{message}");
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Uploads are refused at once from the second failed check on (at most a round of 1 s
    // and a check of 2 s after the first).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let upload = tokio::time::timeout(
        Duration::from_secs(3),
        gateway.upload("image/png", &support::fixture("small.png")),
    )
    .await
    .expect("an upload is refused at once");
    upload.assert_error(503, "storage_unavailable");
    assert!(upload.header("retry-after").is_some());

    s3.freeze(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while probe("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "readyz did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = gateway.upload_fixture("small.png").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
}
