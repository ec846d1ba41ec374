//! Graceful shutdown as Kubernetes does it, on the binaries under load: SIGTERM to a gateway
//! in the middle of uploads, and to a worker in the middle of jobs (on RabbitMQ and on Redis
//! Streams).
//!
//! | rule | test |
//! |---|---|
//! | `/readyz` turns 503 at once | `a_gateway_stopped_under_load_drains_and_loses_nothing` |
//! | uploads are still taken during the drain delay | same |
//! | after it, a new connection is answered 503 `shutting_down` with `Retry-After` | same |
//! | an upload in flight (its body still arriving) finishes with 202 | same |
//! | the gateway exits within `server.shutdown_grace_secs`, status 0 | same |
//! | every 202 reaches `Completed`, each thumbnail the same as its twins' | same, and the worker tests |
//! | a worker takes no new job, finishes or hands back what it holds, exits in time | `*::a_worker_stopped_under_load_loses_nothing` |

mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use support::redis::RedisServer;
use support::{Backend, Gateway, fixture, media_type_of, sigterm, wait_exit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURES: [&str; 4] = [
    "png-rgb.png",
    "jpeg-baseline.jpg",
    "webp-lossy.webp",
    "gif-animated.gif",
];

/// What one upload attempt got, and when (from the test's start).
#[derive(Debug)]
enum Outcome {
    Accepted(String, &'static str),
    ShuttingDown,
    Unreachable,
}

/// Uploads `name` with its body sent in pieces over `over`: an upload in flight. Returns the
/// status and body of the answer.
async fn slow_upload(port: u16, name: &str, over: Duration) -> (u16, String) {
    let body = STANDARD.encode(fixture(name));
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /images HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        media_type_of(name),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let pieces = 10;
    let size = body.len().div_ceil(pieces);
    for piece in body.as_bytes().chunks(size) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(over / pieces as u32).await;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// Checks that every id completed, and that uploads of the same file got the same thumbnail.
async fn all_complete_alike(gateway: &Gateway, accepted: &[(String, &'static str)]) {
    let mut thumbnails: HashMap<&str, Vec<u8>> = HashMap::new();
    for (id, name) in accepted {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{name}: {record}");
        let digest = Sha256::digest(&gateway.thumbnail(id).await.body).to_vec();
        let first = thumbnails.entry(name).or_insert_with(|| digest.clone());
        assert_eq!(
            *first, digest,
            "{name}: {id}'s thumbnail differs from its twins'"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_stopped_under_load_drains_and_loses_nothing() {
    const DRAIN: Duration = Duration::from_secs(2);
    const GRACE: Duration = Duration::from_secs(10);
    let yaml = "server: {drain_secs: 2, shutdown_grace_secs: 10}\ndedup: false";
    let mut gateway = Gateway::start(Backend::RabbitMq, yaml).await;
    let port: u16 = gateway.base.rsplit(':').next().unwrap().parse().unwrap();
    let files: Vec<Vec<u8>> = FIXTURES.iter().map(|name| fixture(name)).collect();
    let start = Instant::now();
    let outcomes: Mutex<Vec<(Duration, Outcome)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let mut child = gateway.take_child();

    // Four clients upload without pause until the gateway is gone.
    let client = |first: usize| {
        let (gateway, files, outcomes, done) = (&gateway, &files, &outcomes, &done);
        async move {
            let mut i = first;
            while !done.load(Ordering::Relaxed) {
                let name = FIXTURES[i % FIXTURES.len()];
                let at = start.elapsed();
                let outcome = match gateway
                    .try_upload(media_type_of(name), &files[i % FIXTURES.len()])
                    .await
                {
                    Some(answer) if answer.status == 202 => {
                        Outcome::Accepted(answer.media_id(), name)
                    }
                    Some(answer) => {
                        answer.assert_error(503, "shutting_down");
                        assert_eq!(answer.header("retry-after").as_deref(), Some("1"));
                        Outcome::ShuttingDown
                    }
                    None => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Outcome::Unreachable
                    }
                };
                outcomes.lock().unwrap().push((at, outcome));
                i += 1;
            }
        }
    };
    let control = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        // An upload whose body is still arriving when the signal comes, and after the drain.
        let in_flight = slow_upload(port, "png-rgb.png", DRAIN + Duration::from_secs(2));
        let stop = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let signalled = start.elapsed();
            sigterm(&child);
            let ready_503 = loop {
                if let Some(answer) = gateway.try_get("/readyz").await
                    && answer.status == 503
                {
                    break start.elapsed();
                }
                assert!(
                    start.elapsed() < signalled + DRAIN,
                    "/readyz did not turn 503 during the drain"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let exited = wait_exit(&mut child, GRACE + Duration::from_secs(5)).await;
            let exit_at = start.elapsed();
            done.store(true, Ordering::Relaxed);
            (signalled, ready_503, exited, exit_at)
        };
        tokio::join!(in_flight, stop)
    };
    let (_, _, _, _, ((status, body), (signalled, ready_503, exited, exit_at))) =
        tokio::join!(client(0), client(1), client(2), client(3), control);

    assert!(
        ready_503 - signalled < Duration::from_millis(500),
        "/readyz turned 503 {:?} after SIGTERM",
        ready_503 - signalled
    );
    assert_eq!(
        exited,
        Some(true),
        "the gateway did not exit cleanly in time"
    );
    assert!(
        exit_at - signalled < GRACE,
        "exited {:?} after SIGTERM",
        exit_at - signalled
    );
    assert_eq!(status, 202, "the upload in flight: {body}");
    let slow_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["media_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let outcomes = outcomes.into_inner().unwrap();
    let during_drain = outcomes.iter().filter(|(at, outcome)| {
        *at > signalled + Duration::from_millis(200)
            && *at + Duration::from_millis(200) < signalled + DRAIN
            && matches!(outcome, Outcome::Accepted(..))
    });
    assert!(during_drain.count() > 0, "no upload taken during the drain");
    let after_drain = |at: &Duration| *at > signalled + DRAIN + Duration::from_millis(300);
    assert!(
        !outcomes
            .iter()
            .any(|(at, outcome)| after_drain(at) && matches!(outcome, Outcome::Accepted(..))),
        "an upload started after the drain was taken"
    );
    assert!(
        outcomes
            .iter()
            .any(|(at, outcome)| after_drain(at) && matches!(outcome, Outcome::ShuttingDown)),
        "no new connection was told 503 shutting_down while the upload in flight finished"
    );

    // Started again, the gateway has every upload it took, and completes each.
    gateway.spawn().await;
    let mut accepted: Vec<(String, &'static str)> = outcomes
        .into_iter()
        .filter_map(|(_, outcome)| match outcome {
            Outcome::Accepted(id, name) => Some((id, name)),
            _ => None,
        })
        .collect();
    accepted.push((slow_id, "png-rgb.png"));
    assert!(accepted.len() > 10, "only {} uploads taken", accepted.len());
    all_complete_alike(&gateway, &accepted).await;
}

/// A worker SIGTERMed while jobs flow: it exits in time with status 0, and every job
/// completes (on the other worker, or the one started after).
async fn a_worker_stopped_under_load_loses_nothing(mut gateway: Gateway) {
    let mut accepted = Vec::new();
    for i in 0..24 {
        let name = FIXTURES[i % FIXTURES.len()];
        accepted.push((gateway.upload_fixture(name).await, name));
    }
    // Stopped while it has jobs in hand.
    gateway
        .wait_record(&accepted[0].0, |record| record["service"] == "worker")
        .await;
    gateway.signal_worker(0);
    let exited = gateway.wait_worker_exit(0, Duration::from_secs(60)).await;
    assert_eq!(
        exited,
        Some(true),
        "the worker did not exit cleanly in time"
    );
    for i in 24..32 {
        let name = FIXTURES[i % FIXTURES.len()];
        accepted.push((gateway.upload_fixture(name).await, name));
    }
    gateway.start_worker();
    all_complete_alike(&gateway, &accepted).await;
}

mod rabbitmq {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_worker_stopped_under_load_loses_nothing() {
        let gateway = Gateway::start(Backend::RabbitMq, "dedup: false").await;
        super::a_worker_stopped_under_load_loses_nothing(gateway).await;
    }
}

mod redis {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_worker_stopped_under_load_loses_nothing() {
        let server = RedisServer::start();
        // The jobs the stopped worker had taken and not begun are claimed after 2 s.
        let yaml = "dedup: false\nqueue: {visibility_secs: 2}";
        let mut gateway = Gateway::start_with_queue(Some(server.url()), yaml).await;
        gateway.start_worker();
        gateway.start_worker();
        gateway.wait_ready().await;
        super::a_worker_stopped_under_load_loses_nothing(gateway).await;
        drop(server);
    }
}
