//! The HTTP server: accepts connections and serves the API on each (HTTP/1.1),
//! with the timeouts that keep slow clients from holding connections, and a graceful
//! shutdown.
//!
//! - Headers must arrive within `limits.read_timeout_secs` (a client trickling its headers
//!   loses the connection); bodies are held to the same idle timeout by [`crate::body`].
//! - On shutdown the listener closes, connections finish the requests in flight (idle
//!   keep-alive connections close at once), and whatever is still open after
//!   [`DRAIN_TIMEOUT`] is dropped.

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use common::shutdown::Shutdown;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;

/// How long shutdown waits for open connections to finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` fires, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    read_timeout: Duration,
    mut shutdown: Shutdown,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or the like: pause rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        // Each request carries its client's address, for per-client limits.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().call(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout; dropping them");
    }
}
