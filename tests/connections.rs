//! Hostile connections, end to end against a real gateway: clients that connect and say
//! nothing, speak HTTP/2 without TLS, sit idle on keep-alive, open too many connections, or
//! trickle their bodies. Each is cut within a bounded time, and real clients get through.
//!
//! | connection | answer | test |
//! |---|---|---|
//! | 250 silent, 250 opening with the h2c preface | closed within `limits.read_timeout_secs` (the gateway's open descriptors counted) | `silent_and_idle_connections_are_closed_on_time` |
//! | keep-alive, idle after a request | closed after `limits.keep_alive_secs` | same |
//! | over `limits.max_connections_per_client` | 503 `too_many_connections` (JSON), closed | `connections_over_the_cap_are_refused` |
//! | 8 uploads trickling 4 bytes a second, holding every upload slot | 408 `request_timeout` once below `limits.min_body_bytes_per_sec` after the grace period; a real upload gets 202 meanwhile | `trickled_bodies_are_cut_and_real_uploads_get_through` |

mod support;

use std::time::{Duration, Instant};

use support::{Gateway, fixture};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP/2 connection preface (RFC 9113 §3.4), as an h2c client opens with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits up to `within` for the gateway's open descriptors to fall to at most `most`.
async fn wait_fds_at_most(gateway: &Gateway, most: usize, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let open = gateway.open_fds();
        if open <= most {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{open} descriptors still open after {within:?} (at most {most} expected)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the gateway has closed `stream`: a read ends (with or without a last answer).
async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest))
        .await
        .is_ok()
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_on_time() {
    let gateway = Gateway::start_with_queue(
        None,
        "limits: {read_timeout_secs: 4, keep_alive_secs: 14, max_connections_per_client: 2000}",
    )
    .await;
    let baseline = gateway.open_fds();
    // The idle keep-alive ones first: a request each takes time on a loaded machine, and
    // the silent ones, opened after at once, must all still be open when counted.
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(gateway.address()).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0; 1024];
        let read = stream.read(&mut answer).await.unwrap();
        assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
        idle.push(stream);
    }
    let mut silent = Vec::new();
    for i in 0..500 {
        let mut stream = TcpStream::connect(gateway.address()).await.unwrap();
        if i % 2 == 1 {
            stream.write_all(H2_PREFACE).await.unwrap();
        }
        silent.push(stream);
    }
    let opened = Instant::now();
    // The gateway may still be accepting the last of them from its backlog (the tests of this
    // file run at once, and a loaded machine accepts slowly): the connections are open at
    // first, once accepted, well within the read timeout.
    while gateway.open_fds() < baseline + 300 {
        assert!(
            opened.elapsed() < Duration::from_millis(3500),
            "the connections are open at first: {} descriptors over the baseline",
            gateway.open_fds().saturating_sub(baseline)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The silent ones go within the read timeout (plus the watchdog's slack); the idle
    // keep-alive ones stay until their own, longer, timeout.
    wait_fds_at_most(&gateway, baseline + 60, Duration::from_secs(8)).await;
    assert!(opened.elapsed() < Duration::from_secs(10));
    for stream in &mut silent {
        assert!(is_closed(stream).await);
    }
    wait_fds_at_most(&gateway, baseline + 5, Duration::from_secs(20)).await;
    assert!(
        opened.elapsed() >= Duration::from_secs(10),
        "keep-alive connections live longer than silent ones"
    );
    for stream in &mut idle {
        assert!(is_closed(stream).await);
    }
    assert_eq!(gateway.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn connections_over_the_cap_are_refused() {
    let gateway = Gateway::start_with_queue(None, "limits: {max_connections_per_client: 4}").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(gateway.address()).await.unwrap());
    }
    let answer = gateway
        .raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    answer.assert_error(503, "too_many_connections");
    assert!(String::from_utf8_lossy(&answer.0).contains("retry-after: 1"));
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = gateway
            .raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        if answer.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "places are given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn trickled_bodies_are_cut_and_real_uploads_get_through() {
    let gateway = Gateway::start_with_queue(
        None,
        "limits: {read_timeout_secs: 2, max_inflight_uploads: 8, min_body_bytes_per_sec: 1024}",
    )
    .await;
    let address = gateway.address();
    // Eight uploads take every slot and send 4 bytes a second: never idle for the 2 s
    // timeout, far below 1 KiB/s.
    let tricklers: Vec<_> = (0..8)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(address).await.unwrap();
                stream
                    .write_all(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n")
                    .await
                    .unwrap();
                let started = Instant::now();
                for _ in 0..30 {
                    if stream.write_all(b"iVBO").await.is_err() {
                        break;
                    }
                    let mut answer = [0; 4096];
                    if let Ok(Ok(read)) =
                        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await
                    {
                        return (started.elapsed(), answer[..read].to_vec());
                    }
                }
                (started.elapsed(), Vec::new())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A real upload, retried on 503 as a client told `Retry-After` would.
    let started = Instant::now();
    let png = fixture("png-rgb.png");
    let id = loop {
        let answer = gateway.upload("image/png", &png).await;
        match answer.status.as_u16() {
            202 => break answer.media_id(),
            503 => answer.assert_error(503, "overloaded"),
            other => panic!("{other}: {:?}", answer.body),
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "the real upload never got in"
        );
    };
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "202 after {:?}",
        started.elapsed()
    );
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");

    for trickler in tricklers {
        let (elapsed, answer) = trickler.await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("bytes per second"), "{answer}");
        assert!(elapsed < Duration::from_secs(6), "cut after {elapsed:?}");
    }
}
