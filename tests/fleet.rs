//! The fleet, end to end: two gateways and two workers as separate processes sharing only
//! the queue (RabbitMQ, one vhost; or Redis Streams, a server of the test's own),
//! PostgreSQL (one schema) and S3 (one bucket on a real S3 server), with no directory in
//! common. A client uploads to both gateways and reads each record and thumbnail from the
//! other, while a gateway is SIGKILLed, a worker is SIGKILLed, the S3 server restarts and
//! the broker goes down and comes back (RabbitMQ stops and starts; Redis is SIGKILLed and
//! started again on its append-only file).
//!
//! | check | how |
//! |---|---|
//! | any gateway answers for any record | every record read, and every thumbnail fetched, from the gateway that did not take the upload, and from both at the end |
//! | every 202 ends `Completed` | 300 uploads, retried on the other gateway when one is down or answers 503 |
//! | no duplicate thumbnail | exactly one thumbnail object per accepted upload |
//! | no orphan | no raw object left once every job is final (the orphan sweep runs every second past a 2 s grace) |
//! | no process has a data directory | the gateways' and workers' data directory never exists |
//!
//! Alone in its file, because it stops RabbitMQ: a test beside it could not create its vhost
//! meanwhile. The two fleets run one after the other, so that each has the two cores.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::redis::RedisServer;
use support::{Backend, Gateway, fixture, media_type_of, rabbitmqctl};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The fleet's queue, and how it goes down and comes back.
enum Broker {
    RabbitMq,
    Redis(RedisServer),
}

impl Broker {
    fn outage(&mut self) {
        match self {
            Broker::RabbitMq => {
                rabbitmqctl(&["stop_app"]);
                rabbitmqctl(&["start_app"]);
                rabbitmqctl(&["await_startup"]);
            }
            Broker::Redis(server) => {
                server.kill();
                server.spawn();
            }
        }
    }
}

/// Uploads at first to `first`, and on a refused connection or a 503 to `second`, until one
/// takes it; returns the media id and which gateway took it (0 or 1).
async fn upload_somewhere(
    gateways: [&Gateway; 2],
    first: usize,
    name: &str,
    bytes: &[u8],
) -> (String, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at = first;
    loop {
        if let Some(answer) = gateways[at].try_upload(media_type_of(name), bytes).await {
            match answer.status.as_u16() {
                202 => return (answer.media_id(), at),
                503 => {}
                other => panic!("{name}: {other} {:?}", answer.body),
            }
        }
        assert!(Instant::now() < deadline, "no gateway took {name}");
        at = 1 - at;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_on_rabbitmq_loses_nothing_through_crashes_and_outages() {
    let _serial = SERIAL.lock().await;
    let yaml = "recovery: {orphan_sweep_secs: 1, orphan_grace_secs: 2}";
    let a = Gateway::start(Backend::Distributed, yaml).await;
    fleet(a, yaml, Broker::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_on_redis_loses_nothing_through_crashes_and_outages() {
    let _serial = SERIAL.lock().await;
    // A killed worker's job is taken by the other after 2 s.
    let yaml = "recovery: {orphan_sweep_secs: 1, orphan_grace_secs: 2}\n\
                queue: {visibility_secs: 2}";
    let redis = RedisServer::start();
    let a = Gateway::start_fleet(redis.url(), yaml).await;
    fleet(a, yaml, Broker::Redis(redis)).await;
}

async fn fleet(mut a: Gateway, yaml: &str, mut broker: Broker) {
    let mut b = a.join(yaml).await;
    let names = [
        "png-rgb.png",
        "jpeg-baseline.jpg",
        "gif-animated.gif",
        "webp-lossy.webp",
    ];
    let files: Vec<Vec<u8>> = names.iter().map(|name| fixture(name)).collect();

    let mut accepted: Vec<(String, usize)> = Vec::new();
    for i in 0..300 {
        match i {
            60 => {
                a.kill();
                a.spawn().await;
            }
            120 => {
                a.kill_worker(0);
                a.start_worker();
            }
            180 => {
                let s3 = a.s3.as_mut().unwrap();
                s3.kill();
                s3.spawn().await;
            }
            240 => broker.outage(),
            _ => {}
        }
        let name = names[i % names.len()];
        let (id, at) = upload_somewhere([&a, &b], i % 2, name, &files[i % names.len()]).await;
        // The other gateway knows the record at once: the store is shared.
        let other = [&a, &b][1 - at];
        if let Some(answer) = other.try_get(&format!("/images/{id}")).await {
            assert_eq!(answer.status, 200, "{id} from the other gateway");
        }
        accepted.push((id, at));
    }

    for (id, at) in &accepted {
        let record = [&a, &b][1 - *at].wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{record}");
        for gateway in [&a, &b] {
            assert_eq!(gateway.thumbnail(id).await.status, 200, "{id}");
        }
    }
    let ids: HashSet<&String> = accepted.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), 300);
    // One thumbnail object per upload, and no raw object once the orphan sweep has run.
    let thumbnails: HashSet<String> = a.object_names("thumbnails").into_iter().collect();
    assert_eq!(thumbnails.len(), 300);
    assert!(accepted.iter().all(|(id, _)| thumbnails.contains(id)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.object_names("raw").is_empty() {
        assert!(
            Instant::now() < deadline,
            "raw objects left: {:?}",
            a.object_names("raw")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !a.data_dir.exists() && !b.data_dir.exists(),
        "a data directory appeared"
    );
    b.terminate();
}
