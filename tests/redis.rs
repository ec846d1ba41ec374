//! Redis Streams against a `redis-server` of each test's own (never the machine's) and real
//! `gateway` and `worker` processes: a poison job, an outage, TLS. (The queue contract is in
//! `queue.rs`, the fleet through crashes and a Redis restart in `fleet.rs`.)

mod support;

use std::time::{Duration, Instant};

use support::Gateway;
use support::redis::RedisServer;

/// A job that kills its worker on every delivery is claimed again after each death, then
/// dead-lettered: its record ends `Error`, a dead letter the dashboard lists, and a retry
/// from the dashboard queues it again.
#[tokio::test]
async fn a_job_that_kills_its_worker_every_time_is_a_dead_letter_on_the_dashboard() {
    let server = RedisServer::start();
    // Limits raised so that the 625 MB decode is attempted; workers capped at 800 MB of
    // address space, so that attempt kills them. Claimed again 1 s after each death.
    let config = "queue: {delivery_limit: 2, visibility_secs: 1}\n\
                  limits: {max_pixels: 1000000000, max_alloc_bytes: 4000000000}\n\
                  worker: {concurrency: 1}";
    let mut gateway = Gateway::start_with_queue(Some(server.url()), config).await;
    const ADDRESS_SPACE_KIB: u64 = 800 * 1024;
    let restart =
        |gateway: &mut Gateway| gateway.start_worker_with_address_space(ADDRESS_SPACE_KIB);
    restart(&mut gateway);
    gateway.wait_ready().await;

    let healthy = gateway.upload_fixture("jpeg-baseline.jpg").await;
    assert_eq!(gateway.wait_final(&healthy).await["state"], "Completed");

    let poison = gateway.upload_fixture("hostile-huge.png").await;
    let (record, deaths) = gateway.wait_final_restarting(&poison, restart).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["dead_letter"], true, "{record}");
    // Deliveries 1, 2 and 3 (the last try the limit of 2 allows) each killed a worker.
    assert_eq!(deaths, 3, "the job killed {deaths} workers");
    let data = gateway.get("/dashboard/data").await.json();
    assert_eq!(
        data["dead_letters"][0]["media_id"],
        poison.as_str(),
        "{data}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.cli(&["XLEN", "thumbnailify.dead"]) != "0" {
        assert!(Instant::now() < deadline, "the dead letter was not acked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The fleet goes on.
    gateway.restart_dead_workers(restart);
    let after = gateway.upload_fixture("png-rgb.png").await;
    assert_eq!(gateway.wait_final(&after).await["state"], "Completed");
}

/// With Redis down, uploads are still taken (the broker is never on the upload path),
/// `/readyz` names Redis, and every upload completes once it is back.
#[tokio::test]
async fn uploads_during_a_redis_outage_are_accepted_and_all_complete() {
    let mut server = RedisServer::start();
    let mut gateway = Gateway::start_with_queue(Some(server.url()), "").await;
    gateway.start_worker();
    gateway.wait_ready().await;
    let before = gateway.upload_fixture("jpeg-baseline.jpg").await;

    server.kill();
    gateway.wait_not_ready("Redis").await;
    let mut during = Vec::new();
    for name in ["png-rgb.png", "webp-lossy.webp", "small.png"] {
        during.push(gateway.upload_fixture(name).await);
    }
    server.spawn();

    for id in std::iter::once(&before).chain(&during) {
        assert_eq!(gateway.wait_final(id).await["state"], "Completed", "{id}");
    }
    gateway.wait_ready_again().await;
}

/// `rediss://`: the gateway and a worker reach Redis over TLS, trusting the server's CA
/// through `SSL_CERT_FILE` (which rustls-native-certs reads in place of the system's
/// roots), and a job goes round.
#[tokio::test]
async fn over_tls_jobs_go_round() {
    let server = RedisServer::start_tls();
    assert!(server.url().starts_with("rediss://"));
    let ca = server.ca_file().display().to_string();
    let mut gateway =
        Gateway::start_with_queue_env(server.url(), vec![("SSL_CERT_FILE", ca)], "").await;
    gateway.start_worker();
    gateway.wait_ready().await;
    let id = gateway.upload_fixture("png-rgb.png").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    // Without the CA the server's certificate is refused: the queue stays unavailable.
    let untrusted = Gateway::start_with_queue(Some(server.url()), "").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ready = untrusted.get("/readyz").await;
    ready.assert_error(503, "not_ready");
}
