//! Throughput: `cargo bench --bench throughput [-- SECONDS CLIENTS]`.
//!
//! 1. Core: each fixture photograph thumbnailed in-process on one thread (decode → resize →
//!    encode, as the worker does), median milliseconds of repeated runs.
//! 2. Service: the release binaries with the default configuration, driven over loopback HTTP
//!    by CLIENTS concurrent clients for SECONDS each (default 20 s, 16 clients), each client
//!    looping upload (base64) → poll until final → fetch thumbnail → delete over the fixture
//!    photographs; once with the embedded queue, then on RabbitMQ (127.0.0.1:5672, a fresh
//!    vhost) with 1 and with 2 `worker` processes. Reports uploads accepted and thumbnails
//!    completed per second and the POST latency percentiles.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::{LimitsConfig, ThumbnailConfig};
use hyper::Method;
use support::{Backend, Gateway, Vhost, fixture, media_type_of};

/// The real photographs among the fixtures, one per format and variant.
const PHOTOS: &[&str] = &[
    "jpeg-baseline.jpg",
    "jpeg-progressive.jpg",
    "png-rgb.png",
    "png-rgba.png",
    "gif-animated.gif",
    "webp-lossy.webp",
    "tiff-lzw.tiff",
    "bmp-24.bmp",
];

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    core();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let duration = Duration::from_secs(seconds);
    println!();
    println!("service: {clients} clients, {seconds} s each, upload → poll → thumbnail → delete");
    println!(
        "| queue | uploads accepted/s | thumbnails completed/s | POST p50 ms | POST p99 ms | failures |"
    );
    println!("|---|---|---|---|---|---|");
    runtime.block_on(async {
        let gateway = Gateway::start(Backend::Embedded, "").await;
        service("embedded, workers in-process", gateway, duration, clients).await;
        for workers in [1, 2] {
            let vhost = Vhost::create();
            let mut gateway = Gateway::start_with_queue(Some(vhost.url()), "").await;
            for _ in 0..workers {
                gateway.start_worker();
            }
            let label = format!("RabbitMQ, {workers} worker process(es)");
            service(&label, gateway, duration, clients).await;
        }
    });
}

fn core() {
    println!("core: one thread, fit in 100×100, median of repeated runs");
    println!("| file | size | ms/thumbnail | MP/s |");
    println!("|---|---|---|---|");
    let (settings, limits) = (ThumbnailConfig::default(), LimitsConfig::default());
    for name in PHOTOS {
        let bytes = fixture(name);
        let media_type = media_type_of(name).parse().unwrap();
        let first = worker::thumbnail::make(&bytes, media_type, &settings, &limits).unwrap();
        let pixels = f64::from(first.source_width * first.source_height);
        let mut times: Vec<f64> = (0..30)
            .map(|_| {
                let start = Instant::now();
                let thumbnail = worker::thumbnail::make(&bytes, media_type, &settings, &limits);
                std::hint::black_box(thumbnail.unwrap());
                start.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "| {name} | {}×{} | {median:.2} | {:.0} |",
            first.source_width,
            first.source_height,
            pixels / 1e6 / (median / 1000.0)
        );
    }
}

async fn service(label: &str, gateway: Gateway, duration: Duration, clients: usize) {
    let gateway = Arc::new(gateway);
    let files: Arc<Vec<(&str, Vec<u8>)>> =
        Arc::new(PHOTOS.iter().map(|name| (*name, fixture(name))).collect());
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let (gateway, files) = (Arc::clone(&gateway), Arc::clone(&files));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut completed, mut failures) = (0u64, 0u64);
                let mut i = client;
                while Instant::now() < deadline {
                    let (name, bytes) = &files[i % files.len()];
                    i += 1;
                    let start = Instant::now();
                    let answer = gateway.upload(media_type_of(name), bytes).await;
                    latencies.push(start.elapsed());
                    if answer.status != 202 {
                        failures += 1;
                        continue;
                    }
                    let id = answer.media_id();
                    let record = gateway.wait_final(&id).await;
                    let thumbnail = gateway.thumbnail(&id).await;
                    let deleted = gateway
                        .request(Method::DELETE, &format!("/images/{id}"), &[], "")
                        .await;
                    if record["state"] == "Completed"
                        && thumbnail.status == 200
                        && deleted.status == 204
                    {
                        completed += 1;
                    } else {
                        failures += 1;
                    }
                }
                (latencies, completed, failures)
            })
        })
        .collect();
    let (mut latencies, mut completed, mut failures) = (Vec::new(), 0, 0);
    for task in tasks {
        let (l, c, f) = task.await.unwrap();
        latencies.extend(l);
        completed += c;
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {failures} |",
        latencies.len() as f64 / elapsed,
        completed as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
    );
}
