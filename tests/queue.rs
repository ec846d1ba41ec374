//! The queue contract, held on each back-end through `common::queue::Queue` itself: the
//! embedded queue, RabbitMQ (the machine's broker, a vhost of the test's own) and Redis
//! Streams (a `redis-server` of the test's own on another port).
//!
//! | rule | test |
//! |---|---|
//! | a published job is delivered, first as delivery 1, and once acked never again | `a_job_is_delivered_once_and_gone_once_acked` |
//! | a job handed back comes again, counted | `a_job_handed_back_comes_again_counted` |
//! | results go back to the gateways | `results_reach_the_gateways` |
//! | a consumer holds at most its prefetch unsettled | `a_consumer_holds_no_more_than_its_prefetch` |
//! | heartbeats reach every listener | `heartbeats_reach_every_listener` |
//! | what a consumer that went away held comes again (brokers) | `what_a_lost_consumer_held_comes_again` |
//! | a job handed back past the delivery limit is a dead letter (brokers) | `a_job_past_the_delivery_limit_is_a_dead_letter` |
//! | a live consumer keeps a long job (Redis's visibility time) | `redis::a_long_job_stays_with_its_live_worker` |
//! | a delivery dropped unsettled goes back at once, uncounted (Redis) | `redis::a_delivery_dropped_unsettled_goes_back_at_once` |
//! | a malformed entry is dropped, not handed out (Redis) | `redis::a_malformed_entry_is_dropped` |

mod support;

use std::time::Duration;

use common::config::QueueConfig;
use common::message::{Heartbeat, Job, JobResult, Outcome};
use common::queue::{Consumer, Queue};
use support::Vhost;
use support::redis::RedisServer;
use uuid::Uuid;

/// How long a delivery that should come may take.
const COMES: Duration = Duration::from_secs(20);
/// How long to wait to be confident a delivery that should not come does not.
const STAYS_AWAY: Duration = Duration::from_millis(1500);

/// One back-end, with what it runs on.
enum Backend {
    Embedded,
    RabbitMq(Vhost),
    Redis(RedisServer),
}

/// A queue on `backend`, with a delivery limit of 1 and (Redis) a visibility time of 1 s.
fn connect(backend: &Backend) -> Queue {
    connect_with(backend, 1)
}

/// A queue on `backend`, with a delivery limit of 1 and (Redis) a visibility time of
/// `visibility_secs`.
fn connect_with(backend: &Backend, visibility_secs: u64) -> Queue {
    let config = |url: String| QueueConfig {
        url: Some(url),
        delivery_limit: 1,
        visibility_secs,
        ..QueueConfig::default()
    };
    match backend {
        Backend::Embedded => Queue::embedded(),
        Backend::RabbitMq(vhost) => Queue::from_config(&config(vhost.url())),
        Backend::Redis(server) => Queue::from_config(&config(server.url())),
    }
}

/// Another process's handle on the same queue: the same one, embedded.
fn another(backend: &Backend, queue: &Queue) -> Queue {
    match backend {
        Backend::Embedded => queue.clone(),
        _ => connect(backend),
    }
}

async fn ready(queue: &Queue) {
    let deadline = tokio::time::Instant::now() + COMES;
    while let Err(error) = queue.check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not become ready: {error}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn job() -> Job {
    Job {
        media_id: Uuid::now_v7(),
        media_type: None,
        source_url: None,
        raw_path: "raw/test".to_owned(),
        variants: Vec::new(),
        traceparent: None,
    }
}

async fn next<T>(consumer: &mut Consumer<T>) -> common::queue::Delivery<T> {
    tokio::time::timeout(COMES, consumer.next())
        .await
        .expect("a delivery came in time")
        .expect("the consumer is open")
}

async fn nothing_comes<T: std::fmt::Debug>(consumer: &mut Consumer<T>) {
    if let Ok(Some(delivery)) = tokio::time::timeout(STAYS_AWAY, consumer.next()).await {
        panic!("unexpected delivery: {:?}", delivery.message);
    }
}

async fn a_job_is_delivered_once_and_gone_once_acked(backend: Backend) {
    let queue = connect(&backend);
    ready(&queue).await;
    let sent: Vec<Job> = (0..3).map(|_| job()).collect();
    for job in &sent {
        queue.publish_job(job).await.unwrap();
    }
    let mut jobs = queue.consume_jobs(8).await.unwrap();
    for expected in &sent {
        let delivery = next(&mut jobs).await;
        assert_eq!(&delivery.message, expected, "in order");
        assert_eq!(delivery.deliveries(), 1);
        delivery.ack().await.unwrap();
    }
    nothing_comes(&mut jobs).await;
    drop(jobs);
    queue.close().await;
    if !matches!(backend, Backend::Embedded) {
        // A consumer of another process finds nothing either.
        let other = connect(&backend);
        ready(&other).await;
        let mut jobs = other.consume_jobs(8).await.unwrap();
        nothing_comes(&mut jobs).await;
        other.close().await;
    }
}

async fn a_job_handed_back_comes_again_counted(backend: Backend) {
    let queue = connect(&backend);
    ready(&queue).await;
    let sent = job();
    queue.publish_job(&sent).await.unwrap();
    let mut jobs = queue.consume_jobs(1).await.unwrap();
    let first = next(&mut jobs).await;
    assert_eq!(first.deliveries(), 1);
    first.retry().await.unwrap();
    let second = next(&mut jobs).await;
    assert_eq!(second.message, sent);
    assert_eq!(second.deliveries(), 2);
    second.ack().await.unwrap();
    nothing_comes(&mut jobs).await;
    queue.close().await;
}

async fn results_reach_the_gateways(backend: Backend) {
    let worker = connect(&backend);
    let gateway = another(&backend, &worker);
    ready(&worker).await;
    ready(&gateway).await;
    let mut results = gateway.consume_results().await.unwrap();
    let result = JobResult {
        media_id: Uuid::now_v7(),
        outcome: Outcome::Failed {
            code: 422,
            message: "not an image".to_owned(),
        },
        worker: Some("w".to_owned()),
        traceparent: None,
    };
    worker.publish_result(&result).await.unwrap();
    let delivery = next(&mut results).await;
    assert_eq!(delivery.message, result);
    delivery.ack().await.unwrap();
    nothing_comes(&mut results).await;
    worker.close().await;
    gateway.close().await;
}

async fn a_consumer_holds_no_more_than_its_prefetch(backend: Backend) {
    let queue = connect(&backend);
    ready(&queue).await;
    for _ in 0..4 {
        queue.publish_job(&job()).await.unwrap();
    }
    let mut jobs = queue.consume_jobs(2).await.unwrap();
    let first = next(&mut jobs).await;
    let second = next(&mut jobs).await;
    if !matches!(backend, Backend::Embedded) {
        // The embedded queue hands out jobs as fast as they are asked for: the worker's own
        // slots bound it. A broker holds the rest back for other workers.
        nothing_comes(&mut jobs).await;
        let other = connect(&backend);
        ready(&other).await;
        let mut others = other.consume_jobs(8).await.unwrap();
        for _ in 0..2 {
            next(&mut others).await.ack().await.unwrap();
        }
        other.close().await;
    }
    first.ack().await.unwrap();
    second.ack().await.unwrap();
    queue.close().await;
}

async fn heartbeats_reach_every_listener(backend: Backend) {
    let worker = connect(&backend);
    let (gateway_a, gateway_b) = (another(&backend, &worker), another(&backend, &worker));
    for queue in [&worker, &gateway_a, &gateway_b] {
        ready(queue).await;
    }
    let mut heard = [gateway_a.heartbeats(), gateway_b.heartbeats()];
    let heartbeat = Heartbeat {
        worker: "w:1".to_owned(),
        host: "w".to_owned(),
        concurrency: 2,
        in_flight: 0,
        jobs_done: 7,
        jobs_failed: 1,
        started_at: "2026-12-07T00:00:00Z".to_owned(),
        sent_at: "2026-12-07T00:00:01Z".to_owned(),
        interval_secs: 1,
    };
    // Fire and forget: sent until each listener (subscribing in the background) hears one.
    for listener in &mut heard {
        let got = tokio::time::timeout(COMES, async {
            loop {
                worker.publish_heartbeat(&heartbeat).await.ok();
                if let Ok(Some(got)) =
                    tokio::time::timeout(Duration::from_millis(200), listener.next()).await
                {
                    return got;
                }
            }
        })
        .await
        .expect("a heartbeat was heard");
        assert_eq!(got, heartbeat);
    }
    for queue in [worker, gateway_a, gateway_b] {
        queue.close().await;
    }
}

async fn what_a_lost_consumer_held_comes_again(backend: Backend) {
    let lost = connect(&backend);
    ready(&lost).await;
    let sent = job();
    lost.publish_job(&sent).await.unwrap();
    let mut jobs = lost.consume_jobs(1).await.unwrap();
    let held = next(&mut jobs).await;
    assert_eq!(held.deliveries(), 1);
    // The process goes away holding it: no ack, no hand back.
    std::mem::forget(held);
    drop(jobs);
    lost.close().await;

    let other = connect(&backend);
    ready(&other).await;
    let mut jobs = other.consume_jobs(1).await.unwrap();
    let again = next(&mut jobs).await;
    assert_eq!(again.message, sent);
    assert_eq!(again.deliveries(), 2);
    again.ack().await.unwrap();
    nothing_comes(&mut jobs).await;
    other.close().await;
}

async fn a_job_past_the_delivery_limit_is_a_dead_letter(backend: Backend) {
    let queue = connect(&backend);
    ready(&queue).await;
    let mut dead = queue
        .consume_dead_jobs()
        .expect("brokers keep dead letters");
    let sent = job();
    queue.publish_job(&sent).await.unwrap();
    let mut jobs = queue.consume_jobs(1).await.unwrap();
    // A delivery limit of 1: the last try is delivery 2, and handing that back kills it.
    for try_number in 1..=2 {
        let delivery = next(&mut jobs).await;
        assert_eq!(delivery.deliveries(), try_number);
        delivery.retry().await.unwrap();
    }
    let letter = next(&mut dead).await;
    assert_eq!(letter.message, sent);
    letter.ack().await.unwrap();
    nothing_comes(&mut jobs).await;
    queue.close().await;
}

/// One test per function named, each on a back-end made by `$backend`.
macro_rules! contract_tests {
    ($backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                super::$name($backend).await;
            }
        )*
    };
}

/// What every queue passes, and what only the brokers do (the embedded queue lives and dies
/// with its one process).
macro_rules! broker_tests {
    ($backend:expr) => {
        contract_tests!($backend; a_job_is_delivered_once_and_gone_once_acked,
            a_job_handed_back_comes_again_counted, results_reach_the_gateways,
            a_consumer_holds_no_more_than_its_prefetch, heartbeats_reach_every_listener,
            what_a_lost_consumer_held_comes_again,
            a_job_past_the_delivery_limit_is_a_dead_letter);
    };
}

mod embedded {
    use super::Backend;

    contract_tests!(Backend::Embedded; a_job_is_delivered_once_and_gone_once_acked,
        a_job_handed_back_comes_again_counted, results_reach_the_gateways,
        a_consumer_holds_no_more_than_its_prefetch, heartbeats_reach_every_listener);
}

mod rabbitmq {
    use super::Backend;
    use crate::support::Vhost;

    broker_tests!(Backend::RabbitMq(Vhost::create()));
}

mod redis {
    use std::time::Duration;

    use super::{Backend, connect, connect_with, job, next, nothing_comes, ready};
    use crate::support::redis::RedisServer;

    broker_tests!(Backend::Redis(RedisServer::start()));

    #[tokio::test]
    async fn a_long_job_stays_with_its_live_worker() {
        let backend = Backend::Redis(RedisServer::start());
        let worker = connect(&backend);
        let other = connect(&backend);
        ready(&worker).await;
        ready(&other).await;
        worker.publish_job(&job()).await.unwrap();
        let mut jobs = worker.consume_jobs(1).await.unwrap();
        let held = next(&mut jobs).await;
        // Held for four visibility times by a live consumer: no other takes it meanwhile.
        let mut others = other.consume_jobs(1).await.unwrap();
        let waited = tokio::time::timeout(Duration::from_secs(4), others.next()).await;
        assert!(waited.is_err(), "another worker took a job still held");
        held.ack().await.unwrap();
        nothing_comes(&mut others).await;
        worker.close().await;
        other.close().await;
    }

    #[tokio::test]
    async fn a_delivery_dropped_unsettled_goes_back_at_once() {
        let backend = Backend::Redis(RedisServer::start());
        // A visibility time far longer than the test: only the hand-back can bring it back.
        let stopping = connect_with(&backend, 600);
        let other = connect_with(&backend, 600);
        ready(&stopping).await;
        ready(&other).await;
        let sent = job();
        stopping.publish_job(&sent).await.unwrap();
        let mut jobs = stopping.consume_jobs(1).await.unwrap();
        let taken = next(&mut jobs).await;
        drop(taken);
        drop(jobs);
        let mut others = other.consume_jobs(1).await.unwrap();
        let again = tokio::time::timeout(Duration::from_secs(5), others.next())
            .await
            .expect("handed back at once, not after the visibility time")
            .unwrap();
        assert_eq!(again.message, sent);
        assert_eq!(again.deliveries(), 1, "not counted as a failed delivery");
        again.ack().await.unwrap();
        stopping.close().await;
        other.close().await;
    }

    #[tokio::test]
    async fn a_malformed_entry_is_dropped() {
        let server = RedisServer::start();
        let backend = Backend::Redis(server);
        let queue = connect(&backend);
        ready(&queue).await;
        let Backend::Redis(server) = &backend else {
            unreachable!()
        };
        let added = server.cli(&[
            "XADD",
            "thumbnailify.jobs",
            "*",
            "message",
            "{not json",
            "deliveries",
            "1",
        ]);
        assert!(added.contains('-'), "{added}");
        let sent = job();
        queue.publish_job(&sent).await.unwrap();
        let mut jobs = queue.consume_jobs(4).await.unwrap();
        let delivery = next(&mut jobs).await;
        assert_eq!(delivery.message, sent);
        delivery.ack().await.unwrap();
        nothing_comes(&mut jobs).await;
        assert_eq!(server.cli(&["XLEN", "thumbnailify.jobs"]), "0");
        queue.close().await;
    }
}
