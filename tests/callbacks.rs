//! Pushing and waiting: signed completion callbacks to a real receiver on 127.0.0.1 (retried,
//! timed out, delivered across a crash, refused), `?wait=` long-polls, and the record's
//! history; on every back-end.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::{HeaderMap, StatusCode};
use serde_json::Value;
use support::{Backend, Gateway, fixture, slow_png};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The signing secret the tests configure.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver does with a request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Answers with this status.
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// Answers 302 to the same path on this port.
    Redirect(u16),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1: answers the n-th request with `script[n]` (the last one
/// after the script ends), and keeps every request.
struct Receiver {
    port: u16,
    connections: Arc<Mutex<usize>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(script: Vec<Reply>) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), script)
    }

    fn start_on(listener: TcpListener, script: Vec<Reply>) -> Self {
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (seen, counted) = (Arc::clone(&received), Arc::clone(&connections));
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                *counted.lock().unwrap() += 1;
                let (seen, script) = (Arc::clone(&seen), script.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let index = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(request);
                        seen.len() - 1
                    };
                    match script[index.min(script.len() - 1)] {
                        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
                        Reply::Status(status) => {
                            let answer = format!(
                                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                        }
                        Reply::Redirect(port) => {
                            let answer = format!(
                                "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{port}/hooks/thumbnails\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = stream.write_all(answer.as_bytes()).await;
                        }
                    }
                });
            }
        });
        Self {
            port,
            connections,
            received,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/thumbnails", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} requests",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads one HTTP/1.1 request with a `content-length` body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1).filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.append(
            hyper::header::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            value.trim().parse().ok()?,
        );
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    while buffer.len() < head_end + length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    Some(Received {
        headers,
        body: buffer[head_end..head_end + length].to_vec(),
    })
}

/// The gateway configuration for callbacks to the test's receiver.
fn callbacks_yaml(extra: &str) -> String {
    format!(
        "callbacks: {{secret: {SECRET}, allowed_hosts: ['127.0.0.1'], initial_backoff_ms: 100{extra}}}"
    )
}

/// Uploads a fixture with `callback_url`; returns the media id.
async fn upload_with_callback(gateway: &Gateway, url: &str) -> String {
    use base64::Engine;
    let body = serde_json::json!({
        "data": base64::engine::general_purpose::STANDARD.encode(fixture("jpeg-baseline.jpg")),
        "media_type": "image/jpeg",
        "callback_url": url,
    });
    let answer = gateway.post_json(&body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json());
    assert_eq!(answer.json()["callback"]["state"], "pending");
    answer.media_id()
}

/// Checks a delivery as any Standard Webhooks receiver would; returns the record it carries.
fn verify(received: &Received) -> Value {
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&received.body, &received.headers)
        .expect("a valid Standard Webhooks signature");
    serde_json::from_slice(&received.body).unwrap()
}

async fn callbacks_are_signed_and_retried_until_delivered(backend: Backend) {
    let receiver = Receiver::start(vec![
        Reply::Status(500),
        Reply::Status(503),
        Reply::Status(200),
    ])
    .await;
    let gateway = Gateway::start(backend, &callbacks_yaml("")).await;
    let media_id = upload_with_callback(&gateway, &receiver.url()).await;
    let received = receiver.wait_for(3).await;
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one message id: {ids:?}"
    );
    for delivery in &received {
        let record = verify(delivery);
        assert_eq!(record["media_id"], media_id);
        assert_eq!(record["state"], "Completed");
        assert!(
            record.get("events").is_none(),
            "the history is not in the record"
        );
    }
    let record = gateway
        .wait_record(&media_id, |r| r["callback"]["state"] != "pending")
        .await;
    let callback = &record["callback"];
    assert_eq!(callback["state"], "delivered", "{record}");
    assert_eq!(callback["attempts"], 3);
    assert_eq!(callback["last_status"], 200);
    // A tampered body fails verification.
    let mut tampered = received[2].clone();
    tampered.body[0] = b' ';
    assert!(
        standardwebhooks::Webhook::new(SECRET)
            .unwrap()
            .verify(&tampered.body, &tampered.headers)
            .is_err()
    );
    let events = gateway
        .get(&format!("/images/{media_id}/events"))
        .await
        .json();
    let names: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "callback_retry").count(),
        2,
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"callback_delivered"));
    let metrics = String::from_utf8(gateway.get("/metrics").await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("thumbnailify_callback_deliveries_total{outcome=\"retry\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("thumbnailify_callback_deliveries_total{outcome=\"delivered\"} 1"));
    // Nothing more once delivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3);
}

async fn a_receiver_that_never_answers_times_out_and_fails(backend: Backend) {
    let receiver = Receiver::start(vec![Reply::Hang]).await;
    let yaml = callbacks_yaml(", timeout_secs: 1, max_attempts: 2");
    let gateway = Gateway::start(backend, &yaml).await;
    let media_id = upload_with_callback(&gateway, &receiver.url()).await;
    let record = gateway
        .wait_record(&media_id, |r| r["callback"]["state"] != "pending")
        .await;
    let callback = &record["callback"];
    assert_eq!(callback["state"], "failed", "{record}");
    assert_eq!(callback["attempts"], 2);
    assert!(
        callback["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{callback}"
    );
    assert_eq!(receiver.received().len(), 2);
}

/// A receiver that never answers holds up only its own callbacks: twenty to it (more than
/// `callbacks.concurrency`), then one to another host, which is delivered while the
/// hanging ones still wait.
async fn a_hanging_receiver_holds_up_only_its_own_callbacks(backend: Backend) {
    let hanging = Receiver::start(vec![Reply::Hang]).await;
    let honest = Receiver::start(vec![Reply::Status(204)]).await;
    let yaml = format!(
        "callbacks: {{secret: {SECRET}, allowed_hosts: ['127.0.0.1', 'localhost'], \
         timeout_secs: 60, concurrency: 4, concurrency_per_host: 2}}"
    );
    let gateway = Gateway::start(backend, &yaml).await;
    let mut waiting = Vec::new();
    for _ in 0..20 {
        waiting.push(upload_with_callback(&gateway, &hanging.url()).await);
    }
    for id in &waiting {
        gateway.wait_final(id).await;
    }
    hanging.wait_for(2).await;
    let other_host = honest.url().replace("127.0.0.1", "localhost");
    let media_id = upload_with_callback(&gateway, &other_host).await;
    let record = gateway
        .wait_record(&media_id, |r| r["callback"]["state"] == "delivered")
        .await;
    assert_eq!(record["callback"]["attempts"], 1, "{record}");
    assert_eq!(
        hanging.received().len(),
        2,
        "the hanging host has its two slots"
    );
    for id in &waiting {
        let record = gateway.get(&format!("/images/{id}")).await.json();
        assert_eq!(record["callback"]["state"], "pending", "{record}");
    }
}

async fn a_callback_survives_a_gateway_killed_before_delivery(backend: Backend) {
    // The first attempt hangs; the gateway is killed while it waits, so the delivery was
    // never recorded; after the restart it is made again and delivered.
    let receiver = Receiver::start(vec![Reply::Hang, Reply::Status(204)]).await;
    let yaml = callbacks_yaml(", timeout_secs: 2");
    let mut gateway = Gateway::start(backend, &yaml).await;
    let media_id = upload_with_callback(&gateway, &receiver.url()).await;
    receiver.wait_for(1).await;
    gateway.kill();
    gateway.spawn().await;
    gateway.wait_ready().await;
    let received = receiver.wait_for(2).await;
    assert_eq!(
        received[0].headers["webhook-id"],
        received[1].headers["webhook-id"]
    );
    assert_eq!(verify(&received[1])["media_id"], media_id);
    let record = gateway
        .wait_record(&media_id, |r| r["callback"]["state"] != "pending")
        .await;
    assert_eq!(record["callback"]["state"], "delivered", "{record}");
    assert_eq!(record["callback"]["last_status"], 204);
}

async fn waiting_answers_as_soon_as_the_record_is_final(backend: Backend) {
    let gateway = Arc::new(Gateway::start(backend, "").await);
    let answer = gateway.upload("image/png", &slow_png()).await;
    let media_id = answer.media_id();
    let waiters: Vec<_> = (0..200)
        .map(|_| {
            let (gateway, media_id) = (Arc::clone(&gateway), media_id.clone());
            tokio::spawn(async move {
                let answer = gateway.get(&format!("/images/{media_id}?wait=30")).await;
                (answer, std::time::SystemTime::now())
            })
        })
        .collect();
    let mut latest = std::time::UNIX_EPOCH;
    let mut record = Value::Null;
    for waiter in waiters {
        let (answer, at) = waiter.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        record = answer.json();
        assert_eq!(record["state"], "Completed", "answered only once final");
        latest = latest.max(at);
    }
    let completed = humantime::parse_rfc3339(record["updated_at"].as_str().unwrap()).unwrap();
    let late = latest.duration_since(completed).unwrap_or_default();
    // Woken by the completion itself, not by the store recheck every 2 s
    // (the latency figure is benches/waiters.py's, not this test's).
    assert!(
        late < Duration::from_millis(1500),
        "the last of 200 waiters answered {late:?} after completion"
    );
    // On a final record, at once; a bad wait is a bad parameter.
    let start = Instant::now();
    gateway.get(&format!("/images/{media_id}?wait=30")).await;
    assert!(start.elapsed() < Duration::from_secs(1));
    gateway
        .get(&format!("/images/{media_id}?wait=61"))
        .await
        .assert_error(400, "invalid_parameter");
}

async fn the_history_tells_the_story(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let media_id = gateway.upload_fixture("jpeg-baseline.jpg").await;
    gateway.wait_final(&media_id).await;
    let events = gateway
        .get(&format!("/images/{media_id}/events"))
        .await
        .json();
    let items = events["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["accepted", "queued", "started", "completed"],
        "{events}"
    );
    let times: Vec<&str> = items.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(items[0]["service"], "gateway");
    assert_eq!(items[2]["service"], "worker");
    let by = items[2]["by"].as_str().unwrap();
    assert!(by.contains(':'), "the worker process: {by}");
    let failed = gateway
        .upload("image/png", &fixture("hostile-truncated.png"))
        .await;
    let failed_id = failed.media_id();
    gateway.wait_final(&failed_id).await;
    let events = gateway
        .get(&format!("/images/{failed_id}/events"))
        .await
        .json();
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"], "failed");
    assert!(!last["message"].as_str().unwrap().is_empty());
    gateway
        .get("/images/0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b/events")
        .await
        .assert_error(404, "not_found");
}

on_every_backend!(
    a_hanging_receiver_holds_up_only_its_own_callbacks,
    callbacks_are_signed_and_retried_until_delivered,
    a_receiver_that_never_answers_times_out_and_fails,
    a_callback_survives_a_gateway_killed_before_delivery,
    waiting_answers_as_soon_as_the_record_is_final,
    the_history_tells_the_story,
);

#[tokio::test]
async fn refused_addresses_are_never_connected_to() {
    // A receiver on 127.0.0.1 that the configuration does not allow.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = Receiver::start_on(listener, vec![Reply::Status(200)]);
    let yaml = format!("callbacks: {{secret: {SECRET}}}");
    let gateway = Gateway::start(Backend::Embedded, &yaml).await;
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(fixture("small.png"));
    for url in [
        receiver.url(),
        format!("http://localhost:{}/", receiver.port),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        "http://[::1]/hook".to_owned(),
        "http://[::ffff:127.0.0.1]/hook".to_owned(),
        "ftp://example.org/hook".to_owned(),
        "http://user:secret@example.org/hook".to_owned(),
    ] {
        let body =
            serde_json::json!({"data": data, "media_type": "image/png", "callback_url": url});
        let answer = gateway.post_json(&body).await;
        answer.assert_error(400, "callback_not_allowed");
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!message.contains("secret"), "{message}");
    }
    assert_eq!(gateway.record_count().await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*receiver.connections.lock().unwrap(), 0, "never connected");
    // Without a secret, callbacks are off.
    let unsigned = Gateway::start(Backend::Embedded, "").await;
    let body = serde_json::json!({"data": data, "media_type": "image/png", "callback_url": "https://hooks.example.org/"});
    unsigned
        .post_json(&body)
        .await
        .assert_error(400, "callback_not_allowed");
}

#[tokio::test]
async fn waiting_ends_with_the_processing_record_when_time_is_up() {
    // RabbitMQ with no worker: the record stays processing.
    let mut gateway = Gateway::start(Backend::RabbitMq, "").await;
    gateway.kill_worker(0);
    gateway.kill_worker(1);
    let answer = gateway.upload("image/png", &fixture("small.png")).await;
    let start = Instant::now();
    let waited = gateway
        .get(&format!("/images/{}?wait=1", answer.media_id()))
        .await;
    let elapsed = start.elapsed();
    assert_eq!(waited.status, StatusCode::OK);
    assert_eq!(waited.json()["state"], "Processing");
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test]
async fn the_service_wide_url_gets_every_record_and_a_4xx_is_not_retried() {
    // callbacks.url: an upload that names no callback_url is posted there.
    let receiver = Receiver::start(vec![Reply::Status(404)]).await;
    let yaml = callbacks_yaml(&format!(", url: '{}'", receiver.url()));
    let gateway = Gateway::start(Backend::Embedded, &yaml).await;
    let media_id = gateway.upload_fixture("jpeg-baseline.jpg").await;
    let record = gateway
        .wait_record(&media_id, |r| r["callback"]["state"] != "pending")
        .await;
    let callback = &record["callback"];
    assert_eq!(callback["url"], receiver.url());
    // A 404 is the receiver's answer, not a passing failure: no second attempt.
    assert_eq!(callback["state"], "failed", "{record}");
    assert_eq!(
        (&callback["attempts"], &callback["last_status"]),
        (&serde_json::json!(1), &serde_json::json!(404))
    );
    assert_eq!(verify(&receiver.received()[0])["media_id"], media_id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    // A receiver that redirects elsewhere: the signed record goes nowhere else, and the
    // delivery fails with the 302 (a redirect is the receiver's answer, not a passing fault).
    let elsewhere = Receiver::start(vec![Reply::Status(204)]).await;
    let receiver = Receiver::start(vec![Reply::Redirect(elsewhere.port)]).await;
    let gateway = Gateway::start(Backend::Embedded, &callbacks_yaml("")).await;
    let media_id = upload_with_callback(&gateway, &receiver.url()).await;
    let record = gateway
        .wait_record(&media_id, |r| r["callback"]["state"] != "pending")
        .await;
    assert_eq!(record["callback"]["state"], "failed", "{record}");
    assert_eq!(record["callback"]["last_status"], 302);
    assert_eq!(receiver.received().len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(elsewhere.received().len(), 0, "the redirect was followed");
    assert_eq!(*elsewhere.connections.lock().unwrap(), 0);
}
