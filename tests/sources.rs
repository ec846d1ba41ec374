//! Uploads by URL, on every back-end: a real HTTP server on 127.0.0.1 serves images,
//! redirects, slow and endless bodies, lying Content-Types and 404s; the record ends
//! `Completed`, or `Error` with the code of what went wrong. Refusal of the other address
//! ranges is the classifier's unit test (`common::address`): no traffic goes anywhere but
//! 127.0.0.1 here.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Backend, Gateway, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP server on 127.0.0.1 with a fixed set of paths; stops when dropped.
struct Source {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Source {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream));
            }
        });
        Self { port, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

async fn serve(mut stream: tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let respond = |status: &str, headers: &str, body: &[u8]| {
        let mut answer = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(body);
        answer
    };
    let answer = match path.as_str() {
        // A PNG the server calls text: the bytes are believed, not the header.
        "/image.png" => respond(
            "200 OK",
            "Content-Type: text/plain\r\n",
            &fixture("png-rgba.png"),
        ),
        "/photo" => respond("200 OK", "", &fixture("jpeg-baseline.jpg")),
        "/clip" => respond("200 OK", "", &fixture("video-h264.mp4")),
        "/page.html" => respond(
            "200 OK",
            "Content-Type: image/png\r\n",
            b"<!doctype html><title>not an image</title>",
        ),
        "/missing" => respond("404 Not Found", "", b"no"),
        "/huge" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        }
        "/endless" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await;
            let chunk = [b"10000\r\n".as_slice(), &[0u8; 0x10000], b"\r\n"].concat();
            while stream.write_all(&chunk).await.is_ok() {}
            return;
        }
        "/slow" => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                .await;
            while stream.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            return;
        }
        "/late" => {
            // Answers after 1.5 s: long enough for a gateway to die meanwhile.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            respond("200 OK", "", &fixture("jpeg-baseline.jpg"))
        }
        "/outside" => respond("302 Found", "Location: http://10.1.2.3/a.png\r\n", b""),
        // 3xx answers that are no redirect to follow.
        "/choices" => respond("300 Multiple Choices", "Location: /photo\r\n", b""),
        "/unchanged" => respond("304 Not Modified", "Location: /photo\r\n", b""),
        "/hang" => {
            // Takes the request and never answers.
            tokio::time::sleep(Duration::from_secs(120)).await;
            return;
        }
        "/scheme" => respond("302 Found", "Location: file:///etc/passwd\r\n", b""),
        other => match other
            .strip_prefix("/redirect/")
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(0) => respond("302 Found", "Location: /image.png\r\n", b""),
            Some(n) => respond(
                "301 Moved",
                &format!("Location: /redirect/{}\r\n", n - 1),
                b"",
            ),
            None => respond("400 Bad Request", "", b""),
        },
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

const ALLOWED: &str = "sources:\n  allowed_hosts: [\"127.0.0.1\"]\n  timeout_secs: 2\n  max_redirects: 3\nlimits:\n  max_upload_bytes: 2000000\n";

/// Posts `{"url": url, ...extra}` and returns the record once final.
async fn fetch(gateway: &Gateway, url: &str, extra: Value) -> Value {
    let mut envelope = json!({ "url": url });
    envelope
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let answer = gateway.post_json(&envelope).await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let record = answer.json();
    assert_eq!(record["state"], "Processing");
    assert_eq!(record["message"], "fetching");
    assert_eq!(record["source_url"], url);
    assert_eq!(record["media_type"], Value::Null);
    assert_eq!(
        answer.header("location").as_deref(),
        Some(&*format!(
            "/images/{}",
            record["media_id"].as_str().unwrap()
        ))
    );
    gateway
        .wait_final(record["media_id"].as_str().unwrap())
        .await
}

async fn a_url_is_fetched_sniffed_and_thumbnailed(backend: Backend) {
    let gateway = Gateway::start(backend, ALLOWED).await;
    let source = Source::start().await;
    let png = fixture("png-rgba.png");
    let record = fetch(
        &gateway,
        &source.url("/image.png"),
        json!({"name": "remote", "sizes": "64x64"}),
    )
    .await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert_eq!(
        record["media_type"], "image/png",
        "sniffed, not the server's text/plain"
    );
    assert_eq!(record["size"], png.len());
    assert_eq!(record["name"], "remote");
    assert_eq!(record["thumbnails"][0]["name"], "64x64");
    let base64 = gateway.upload("image/png", &png).await.json();
    assert_eq!(record["sha256"], base64["sha256"]);
    let media_id = record["media_id"].as_str().unwrap();
    assert_eq!(gateway.thumbnail(media_id).await.status, 200);
    // Three redirects are followed; a fourth is not.
    let record = fetch(&gateway, &source.url("/redirect/2"), json!({})).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let record = fetch(&gateway, &source.url("/redirect/3"), json!({})).await;
    assert_eq!(record["state"], "Error");
    assert_eq!(record["code"], 502);
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("more than 3 redirects"),
        "{record}"
    );
}

async fn a_video_url_is_held_to_the_video_limit(backend: Backend) {
    // The clip (89 KB) is over the image limit and under the video limit; the photo (42 KB)
    // is over the image limit.
    let gateway = Gateway::start(
        backend,
        "sources: {allowed_hosts: [\"127.0.0.1\"]}\nlimits: {max_upload_bytes: 40000, max_video_bytes: 200000}",
    )
    .await;
    let source = Source::start().await;
    let record = fetch(&gateway, &source.url("/clip"), json!({})).await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert_eq!(record["media_type"], "video/mp4");
    assert_eq!(record["video"]["codec"], "h264");
    assert!((record["duration"].as_f64().unwrap() - 4.0).abs() < 0.1);
    let record = fetch(&gateway, &source.url("/photo"), json!({})).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 413, "{record}");
}

async fn failed_fetches_end_with_the_code_of_what_went_wrong(backend: Backend) {
    let gateway = Gateway::start(backend, ALLOWED).await;
    let source = Source::start().await;
    for (path, code, words) in [
        ("/missing", 502, "the source answered 404"),
        ("/page.html", 415, "not a supported image"),
        // Over the video limit by its Content-Length, before a byte of it is read.
        ("/huge", 413, "larger than the limit of 1073741824 bytes"),
        // Not a video by its first bytes: cut at the image limit.
        ("/endless", 413, "larger than the limit of 2000000 bytes"),
        ("/slow", 504, "did not arrive within 2 s"),
        ("/outside", 400, "may not be fetched"),
        ("/scheme", 400, "may not be fetched"),
        ("/choices", 502, "the source answered 300"),
        ("/unchanged", 502, "the source answered 304"),
    ] {
        let record = fetch(&gateway, &source.url(path), json!({})).await;
        assert_eq!(record["state"], "Error", "{path}: {record}");
        assert_eq!(record["code"], code, "{path}: {record}");
        let message = record["message"].as_str().unwrap();
        assert!(message.contains(words), "{path}: {message}");
        assert!(
            !message.contains("127.0.0.1"),
            "the URL is not echoed: {message}"
        );
    }
    // A URL that is not http(s), or carries credentials: refused at once.
    for bad in [
        "ftp://127.0.0.1/a.png",
        "http://user:secret@127.0.0.1/a.png",
        "not a url",
    ] {
        gateway
            .post_json(&json!({ "url": bad }))
            .await
            .assert_error(400, "invalid_parameter");
    }
    gateway
        .post_json(&json!({ "url": source.url("/photo"), "data": "aGk=" }))
        .await
        .assert_error(400, "invalid_json");
}

/// A URL whose host is plainly internal is refused at upload, as a callback URL is, with a
/// message that does not repeat it; a redirect there is refused when fetched.
async fn loopback_is_refused_unless_allowed(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let source = Source::start().await;
    for (url, words) in [
        (source.url("/photo"), "loopback"),
        (
            source.url("/photo").replace("127.0.0.1", "localhost"),
            "loopback",
        ),
        ("http://[::1]:9/photo".to_owned(), "loopback"),
        (
            "http://[::ffff:7f00:1]:9/photo".to_owned(),
            "IPv6 form of a refused IPv4 address",
        ),
        ("http://10.1.2.3/photo".to_owned(), "private"),
        ("http://169.254.169.254/latest".to_owned(), "link-local"),
    ] {
        let answer = gateway.post_json(&json!({ "url": url })).await;
        answer.assert_error(400, "invalid_parameter");
        let message = answer.json()["error"]["message"].to_string();
        assert!(message.contains(words), "{url}: {message}");
        assert!(!message.contains(&url), "the URL is not echoed: {message}");
    }
    assert_eq!(gateway.record_count().await, 0);
}

/// Sources that never answer hold fetch slots, not decode slots: with one decode slot and
/// the fetch slots full of hanging sources (and one host's past its own limit), an upload
/// and a source on another host still complete while the hanging ones wait.
async fn slow_sources_never_hold_up_thumbnailing(backend: Backend) {
    let gateway = Gateway::start(
        backend,
        "worker: {concurrency: 1}\n\
         sources: {allowed_hosts: [\"127.0.0.1\", \"localhost\"], timeout_secs: 60, \
         max_fetches: 4, max_fetches_per_host: 3, max_in_flight_per_client: 6}\n",
    )
    .await;
    let source = Source::start().await;
    let mut hanging = Vec::new();
    for _ in 0..5 {
        let answer = gateway
            .post_json(&json!({ "url": source.url("/hang") }))
            .await;
        assert_eq!(answer.status, 202);
        hanging.push(answer.media_id());
    }
    let photo = gateway.upload_fixture("jpeg-baseline.jpg").await;
    assert_eq!(gateway.wait_final(&photo).await["state"], "Completed");
    // 127.0.0.1 has its 3 slots; another host takes the pool's fourth.
    let by_name = source.url("/photo").replace("127.0.0.1", "localhost");
    let record = fetch(&gateway, &by_name, json!({})).await;
    assert_eq!(record["state"], "Completed", "{record}");
    for id in &hanging {
        let record = gateway.get(&format!("/images/{id}")).await.json();
        assert_eq!(record["state"], "Processing", "{record}");
    }
    // This client's uploads by URL in flight are bounded: the five hanging and one more.
    let sixth = gateway
        .post_json(&json!({ "url": source.url("/hang") }))
        .await;
    assert_eq!(sixth.status, 202);
    let over = gateway
        .post_json(&json!({ "url": source.url("/photo") }))
        .await;
    over.assert_error(429, "too_many_sources");
    assert!(over.header("retry-after").is_some());
    // One ending makes room again (on another host: 127.0.0.1's fetch slots hang).
    let deleted = gateway
        .request(
            hyper::Method::DELETE,
            &format!("/images/{}", sixth.media_id()),
            &[],
            "",
        )
        .await;
    assert_eq!(deleted.status, 204);
    let record = fetch(&gateway, &by_name, json!({})).await;
    assert_eq!(record["state"], "Completed", "{record}");
}

async fn a_fetch_survives_a_gateway_crash(backend: Backend) {
    let mut gateway = Gateway::start(backend, ALLOWED).await;
    let source = Source::start().await;
    let answer = gateway
        .post_json(&json!({ "url": source.url("/late") }))
        .await;
    assert_eq!(answer.status, 202);
    let media_id = answer.media_id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.kill();
    gateway.spawn().await;
    gateway.wait_ready().await;
    let record = gateway.wait_final(&media_id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert_eq!(record["media_type"], "image/jpeg");
}

on_every_backend!(
    a_url_is_fetched_sniffed_and_thumbnailed,
    a_video_url_is_held_to_the_video_limit,
    failed_fetches_end_with_the_code_of_what_went_wrong,
    loopback_is_refused_unless_allowed,
    slow_sources_never_hold_up_thumbnailing,
    a_fetch_survives_a_gateway_crash,
);
