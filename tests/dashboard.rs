//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! against a gateway on RabbitMQ with a worker process.
//!
//! One upload is made a dead letter (no worker for it, stuck past its one attempt), then a
//! worker starts, and good and broken uploads follow. The page must show the counts, the
//! worker's heartbeat, the failure with its message and the dead letter; clicking "retry"
//! must queue the dead letter again and the page must then show it completed. A screenshot
//! goes to `target/dashboard.png`. `scripts/test` installs Chromium and chromedriver.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::{Gateway, Vhost, fixture, free_port};

/// The browser, and the chromedriver process it runs under.
struct Browser {
    client: Client,
    driver: Child,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1500"],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    assert!(Instant::now() < deadline, "no browser session: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Self { client, driver }
    }

    /// The text of the element `css` names, once there is one.
    async fn text(&self, css: &str) -> String {
        let element = self
            .client
            .wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap();
        element.text().await.unwrap()
    }

    /// Waits until the element `css` names has text for which `accept` holds.
    async fn wait_text(&self, css: &str, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if accept(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{css}: {text:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn the_dashboard_shows_the_fleet_and_retries_a_dead_letter() {
    let vhost = Vhost::create();
    // First, no worker and one attempt of 1 s: the upload becomes a dead letter.
    let impatient = "recovery: {stuck_after_secs: 1, max_attempts: 1}\nworker: {heartbeat_secs: 1}";
    let mut gateway = Gateway::start_with_queue(Some(vhost.url()), impatient).await;
    gateway.wait_ready().await;
    let dead = gateway.upload_fixture("png-rgb.png").await;
    let record = gateway
        .wait_record(&dead, |record| record["state"] == "Error")
        .await;
    assert_eq!(record["dead_letter"], true, "{record}");
    assert_eq!(record["code"], 504, "{record}");

    // Then the usual settings, a worker, and more uploads: good ones and a broken one.
    assert!(gateway.terminate());
    gateway.rewrite_config("worker: {heartbeat_secs: 1}");
    gateway.spawn().await;
    gateway.wait_ready().await;
    gateway.start_worker();
    let mut good = Vec::new();
    for name in ["jpeg-baseline.jpg", "png-rgba.png", "gif-animated.gif"] {
        good.push(gateway.upload_fixture(name).await);
    }
    let broken = {
        let mut bytes = fixture("jpeg-baseline.jpg");
        bytes.truncate(3000);
        let answer = gateway.upload("image/jpeg", &bytes).await;
        assert_eq!(answer.status, 202);
        answer.media_id()
    };
    for id in good.iter().chain([&broken]) {
        gateway.wait_final(id).await;
    }

    let browser = Browser::start().await;
    browser
        .client
        .goto(&format!("{}/dashboard", gateway.base))
        .await
        .unwrap();
    assert_eq!(
        browser.client.title().await.unwrap(),
        "Thumbnailify dashboard"
    );
    browser
        .wait_text("#count-completed", |text| text == "3")
        .await;
    assert_eq!(browser.text("#count-error").await, "2");
    assert_eq!(browser.text("#count-processing").await, "0");
    assert_eq!(browser.text("#waiting").await, "0");

    // The worker, by its heartbeat.
    let worker = browser
        .wait_text("#workers tbody tr td:nth-child(5)", |text| {
            text.parse::<u64>().is_ok_and(|done| done >= 4)
        })
        .await;
    assert!(worker.parse::<u64>().unwrap() >= 4, "{worker}");

    // The failure, with its message.
    let failure = browser
        .text(&format!("#failures tr[data-media-id='{broken}']"))
        .await;
    assert!(failure.contains("422"), "{failure}");
    assert!(failure.contains("cannot decode image/jpeg"), "{failure}");

    // The dead letter, retried from the page, completes.
    let row = format!("#dead-letters tr[data-media-id='{dead}']");
    assert!(browser.text(&row).await.contains("did not finish"));
    let screenshot = browser.client.screenshot().await.unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/dashboard-dead-letter.png"
    );
    std::fs::write(path, screenshot).unwrap();
    browser
        .client
        .find(Locator::Css(&format!("{row} button.retry")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let record = gateway
        .wait_record(&dead, |record| record["state"] == "Completed")
        .await;
    assert!(record.get("dead_letter").is_none(), "{record}");
    browser
        .wait_text("#count-completed", |text| text == "4")
        .await;
    browser
        .wait_text("#dead-letters tbody", |text| text.trim() == "none")
        .await;
    assert_eq!(browser.text("#count-error").await, "1");

    let screenshot = browser.client.screenshot().await.unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard.png");
    std::fs::write(path, screenshot).unwrap();
}

#[tokio::test]
async fn on_postgresql_and_s3_dead_letters_are_listed_and_discarded() {
    let topology = support::Topology {
        rabbitmq: true,
        postgres: true,
        s3: true,
    };
    let impatient = "recovery: {stuck_after_secs: 1, max_attempts: 1}\nworker: {heartbeat_secs: 1}";
    let mut gateway = Gateway::start_topology(topology, impatient).await;
    // Its workers are heard from, then stopped: the next upload waits for none.
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.get("/dashboard/data").await.json()["workers"]
        .as_array()
        .is_none_or(|workers| workers.len() < 2)
    {
        assert!(Instant::now() < deadline, "the workers were not heard from");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway.kill_worker(0);
    gateway.kill_worker(1);
    let dead = gateway.upload_fixture("png-rgb.png").await;
    let record = gateway
        .wait_record(&dead, |record| record["state"] == "Error")
        .await;
    assert_eq!(record["dead_letter"], true, "{record}");

    let data = gateway.get("/dashboard/data").await.json();
    assert_eq!(data["error"], 1, "{data}");
    assert_eq!(data["dead_letters"][0]["media_id"], dead.as_str(), "{data}");
    assert_eq!(data["failures"][0]["media_id"], dead.as_str(), "{data}");

    let discard = format!("/dashboard/dead/{dead}/discard");
    let answer = gateway
        .request(hyper::Method::POST, &discard, &[], bytes::Bytes::new())
        .await;
    assert_eq!(answer.status, 204);
    let record = gateway.get(&format!("/images/{dead}")).await.json();
    assert!(record.get("dead_letter").is_none(), "{record}");
    assert_eq!(record["state"], "Error");
    let data = gateway.get("/dashboard/data").await.json();
    assert_eq!(data["dead_letters"], json!([]), "{data}");
    // Discarded: neither action applies any more; a record that never was one, alike.
    for action in ["retry", "discard"] {
        let path = format!("/dashboard/dead/{dead}/{action}");
        gateway
            .request(hyper::Method::POST, &path, &[], bytes::Bytes::new())
            .await
            .assert_error(409, "not_a_dead_letter");
    }
    let missing = "/dashboard/dead/019abf5e-0000-7000-8000-000000000000/retry";
    gateway
        .request(hyper::Method::POST, missing, &[], bytes::Bytes::new())
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn with_api_keys_the_page_is_open_and_its_data_and_actions_are_not() {
    let gateway = Gateway::start_with_queue(
        None,
        "auth: {api_keys: [tenant-key], tenants: {ops: [dash-key]}, operators: [ops]}",
    )
    .await;
    let page = gateway.get("/dashboard").await;
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("API key"));
    gateway
        .get("/dashboard/data")
        .await
        .assert_error(401, "unauthorized");
    let retry = "/dashboard/dead/019abf5e-0000-7000-8000-000000000000/retry";
    gateway
        .request(hyper::Method::POST, retry, &[], bytes::Bytes::new())
        .await
        .assert_error(401, "unauthorized");
    // A tenant's key is no operator's: the dashboard spans every tenant's records.
    let tenant = [("authorization", "Bearer tenant-key")];
    gateway
        .request(
            hyper::Method::GET,
            "/dashboard/data",
            &tenant,
            bytes::Bytes::new(),
        )
        .await
        .assert_error(403, "forbidden");
    gateway
        .request(hyper::Method::POST, retry, &tenant, bytes::Bytes::new())
        .await
        .assert_error(403, "forbidden");
    let answer = gateway
        .request(
            hyper::Method::GET,
            "/dashboard/data",
            &[("authorization", "Bearer dash-key")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(answer.status, 200);
    // The embedded workers are heard from too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let data = gateway
            .request(
                hyper::Method::GET,
                "/dashboard/data",
                &[("authorization", "Bearer dash-key")],
                bytes::Bytes::new(),
            )
            .await
            .json();
        if data["workers"][0]["alive"] == true {
            assert!(
                data["workers"][0]["concurrency"].as_u64() >= Some(1),
                "{data}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{data}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
