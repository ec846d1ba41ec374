//! RabbitMQ faults, against the real broker on 127.0.0.1:5672 and real `gateway` and `worker`
//! processes, each test in a vhost of its own. (The API, format and durability suites also
//! run on RabbitMQ with two workers: see `api.rs`, `formats.rs`, `durability.rs`.)
//!
//! These tests run one at a time: one of them stops the broker.

mod support;

use support::{Backend, Gateway, Vhost, rabbitmqctl, slow_png};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A broker outage: `stop_app` now, `start_app` when dropped (even if the test fails).
struct Outage;

impl Outage {
    fn begin() -> Self {
        rabbitmqctl(&["stop_app"]);
        Outage
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test]
async fn uploads_during_a_broker_outage_are_accepted_and_all_complete() {
    let _serial = SERIAL.lock().await;
    let gateway = Gateway::start(Backend::RabbitMq, "").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(gateway.upload_fixture("jpeg-baseline.jpg").await);
    }

    let outage = Outage::begin();
    gateway.wait_not_ready("RabbitMQ").await;
    assert_eq!(gateway.get("/healthz").await.status, 200);
    let mut during = Vec::new();
    for name in [
        "png-rgb.png",
        "webp-lossy.webp",
        "tiff-lzw.tiff",
        "small.png",
    ] {
        during.push(gateway.upload_fixture(name).await);
    }
    for id in &during {
        let record = gateway.get(&format!("/images/{id}")).await.json();
        assert_eq!(record["state"], "Processing");
        assert_eq!(record["service"], "gateway");
    }
    drop(outage);

    for id in ids.iter().chain(&during) {
        assert_eq!(gateway.wait_final(id).await["state"], "Completed", "{id}");
    }
    gateway.wait_ready_again().await;
}

#[tokio::test]
async fn a_killed_worker_s_job_is_redelivered_and_completes_on_another() {
    let _serial = SERIAL.lock().await;
    let vhost = Vhost::create();
    let mut gateway =
        Gateway::start_with_queue(Some(vhost.url()), "worker: {concurrency: 1}").await;
    let answer = gateway.upload("image/png", &slow_png()).await;
    assert_eq!(answer.status, 202);
    let id = answer.media_id();

    let first = gateway.start_worker();
    gateway
        .wait_record(&id, |record| record["service"] == "worker")
        .await;
    gateway.kill_worker(first);
    let record = gateway.get(&format!("/images/{id}")).await.json();
    assert_eq!(
        record["state"], "Processing",
        "killed in the middle of the job"
    );
    assert!(!gateway.thumbnail_path(&id).exists());

    gateway.start_worker();
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert_eq!(record["thumbnail"]["width"], 100);
}

#[tokio::test]
async fn a_worker_finishes_its_job_on_sigterm_and_exits_cleanly() {
    let _serial = SERIAL.lock().await;
    let vhost = Vhost::create();
    let mut gateway =
        Gateway::start_with_queue(Some(vhost.url()), "worker: {concurrency: 1}").await;
    let answer = gateway.upload("image/png", &slow_png()).await;
    let id = answer.media_id();
    let worker = gateway.start_worker();
    gateway
        .wait_record(&id, |record| record["service"] == "worker")
        .await;
    assert!(
        gateway.terminate_worker(worker),
        "exit status 0 after SIGTERM"
    );
    // No other worker exists: the job was finished by the one that stopped.
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Completed", "{record}");
}

#[tokio::test]
async fn a_job_that_kills_its_worker_every_time_is_dead_lettered_as_an_error() {
    let _serial = SERIAL.lock().await;
    let vhost = Vhost::create();
    // Limits raised so that the 625 MB decode is attempted; workers capped at 800 MB of
    // address space, so that attempt kills them.
    let config = "queue: {delivery_limit: 2}\n\
                  limits: {max_pixels: 1000000000, max_alloc_bytes: 4000000000}\n\
                  worker: {concurrency: 1}";
    let mut gateway = Gateway::start_with_queue(Some(vhost.url()), config).await;
    const ADDRESS_SPACE_KIB: u64 = 800 * 1024;
    let restart =
        |gateway: &mut Gateway| gateway.start_worker_with_address_space(ADDRESS_SPACE_KIB);
    restart(&mut gateway);
    restart(&mut gateway);

    let healthy = gateway.upload_fixture("jpeg-baseline.jpg").await;
    assert_eq!(gateway.wait_final(&healthy).await["state"], "Completed");

    let poison = gateway.upload_fixture("hostile-huge.png").await;
    let (record, deaths) = gateway.wait_final_restarting(&poison, restart).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 500);
    assert!(
        record["message"].as_str().unwrap().contains("attempts"),
        "{record}"
    );
    // A dead letter: kept, raw upload and all, for an operator to retry or discard.
    assert_eq!(record["dead_letter"], true, "{record}");
    assert!(deaths >= 2, "the job killed {deaths} workers");

    // The fleet goes on.
    gateway.restart_dead_workers(restart);
    let after = gateway.upload_fixture("png-rgb.png").await;
    assert_eq!(gateway.wait_final(&after).await["state"], "Completed");
}

#[tokio::test]
async fn a_job_no_worker_takes_is_queued_again_then_recorded_as_failed() {
    let _serial = SERIAL.lock().await;
    let vhost = Vhost::create();
    let config = "recovery: {stuck_after_secs: 1, max_attempts: 2}";
    let mut gateway = Gateway::start_with_queue(Some(vhost.url()), config).await;
    gateway.wait_ready().await;
    // No worker runs: the job waits in RabbitMQ and the record cannot move.
    let id = gateway.upload_fixture("small.png").await;
    let requeued = gateway
        .wait_record(&id, |record| record["attempts"] == 2)
        .await;
    assert_eq!(requeued["state"], "Processing", "{requeued}");
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 504);
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("did not finish")
    );

    // A worker arriving late finds both queued copies; the record keeps its first final state.
    gateway.start_worker();
    let other = gateway.upload_fixture("small.png").await;
    assert_eq!(gateway.wait_final(&other).await["state"], "Completed");
    assert_eq!(
        gateway.get(&format!("/images/{id}")).await.json()["state"],
        "Error"
    );
}

#[tokio::test]
async fn without_a_broker_uploads_are_accepted_and_readyz_says_why() {
    let gateway =
        Gateway::start_with_queue(Some("amqp://guest:guest@127.0.0.1:1/%2f".to_owned()), "").await;
    assert_eq!(gateway.get("/healthz").await.status, 200);
    let ready = gateway.get("/readyz").await;
    ready.assert_error(503, "not_ready");
    assert!(ready.body.windows(8).any(|w| w == b"RabbitMQ"));
    let id = gateway.upload_fixture("small.png").await;
    let record = gateway.get(&format!("/images/{id}")).await.json();
    assert_eq!(record["state"], "Processing");
}
