//! The HTTP server: accepts connections and serves the API on each, over HTTP/1.1 only, with
//! the limits that keep idle or slow clients from holding connections, and a graceful
//! shutdown.
//!
//! - A connection is let in only while fewer than `limits.max_connections` are open, and fewer
//!   than `limits.max_connections_per_client` from its IP address; otherwise it is answered
//!   503 `too_many_connections` (the JSON error) and closed.
//! - A new connection must send a complete request head within `limits.read_timeout_secs`,
//!   and a keep-alive connection is closed once idle for `limits.keep_alive_secs` between
//!   requests ([`Activity`]). A request being handled, or its response being written, is never
//!   cut by these; bodies have their own limits ([`crate::body`]).
//! - hyper's own answers to what it cannot parse are written as the JSON error
//!   ([`JsonErrors`]).
//! - HTTP/2 is not served: a client that opens with the HTTP/2 preface (h2c) has its
//!   connection closed without an answer. Put a TLS-terminating proxy in front for HTTP/2 to
//!   clients.
//! - On shutdown (the gateway fires it once its drain delay after SIGTERM is over) the open
//!   connections finish the requests in flight (idle keep-alive connections close at once),
//!   while the listener stays open to answer each new connection 503 `shutting_down` with
//!   `Retry-After` (a client that reaches a stopping gateway is told to retry, not reset);
//!   once the open connections are done, or [`ServerLimits::shutdown_grace`] has passed (what
//!   is still open then is dropped), the listener closes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower_service::Service;

use crate::error::ApiError;
use crate::json_errors::JsonErrors;
use crate::protocol::{HYPER_MAX_HEAD_BYTES, HYPER_MAX_HEADERS};

/// How long a refused connection is given to take its 503.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// The server's limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// How long a new connection may take to send a complete request head.
    pub read_timeout: Duration,
    /// How long a keep-alive connection may stay idle between requests.
    pub keep_alive: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one IP address at most.
    pub max_connections_per_client: usize,
    /// How long the connections open at shutdown may take to finish.
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` fires, then drains the connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    mut shutdown: common::shutdown::Shutdown,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // A backstop only: `Activity` closes idle connections first.
        .header_read_timeout(limits.read_timeout.max(limits.keep_alive) + Duration::from_secs(1))
        .max_buf_size(HYPER_MAX_HEAD_BYTES)
        .max_headers(HYPER_MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let open = Arc::new(OpenConnections::default());
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
        let Some(slot) = open.take(peer.ip(), &limits) else {
            tracing::debug!(%peer, "connection refused: too many open");
            tokio::spawn(refuse(stream, ApiError::TooManyConnections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = {
            let (router, activity) = (router.clone(), Arc::clone(&activity));
            hyper::service::service_fn(move |mut request: Request<Incoming>| {
                // Each request carries its client's address, for per-client limits.
                request.extensions_mut().insert(ConnectInfo(peer));
                let busy = Busy::new(Arc::clone(&activity));
                let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
                let response = router.clone().call(request);
                // A request that changes something runs on a task of its own, started now: when
                // its client hangs up, hyper drops what it was serving (even before its first
                // poll, when head, body and end arrive in one read), and an upload must still
                // commit the files that arrived whole, a delete still delete. Its body then ends
                // short of its length, which the body readers refuse.
                let response: Pin<Box<dyn Future<Output = _> + Send>> = if changes {
                    let task = tokio::spawn(response);
                    Box::pin(async move {
                        task.await.unwrap_or_else(|error| {
                            Ok(ApiError::Io(std::io::Error::other(error)).into_response())
                        })
                    })
                } else {
                    Box::pin(response)
                };
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Body::new(Tracked { body, _busy: busy })),
                    )
                }
            })
        };
        let stream = JsonErrors::new(stream);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(run_connection(connection, activity, limits, peer, slot));
    }
    tracing::info!("new connections refused; finishing the requests in flight");
    let finished = graceful.shutdown();
    let mut finished = pin!(finished);
    let deadline = tokio::time::sleep(limits.shutdown_grace);
    let mut deadline = pin!(deadline);
    loop {
        tokio::select! {
            () = &mut finished => break,
            () = &mut deadline => {
                tracing::warn!("connections still open at the end of the shutdown grace; dropping them");
                break;
            }
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    tokio::spawn(refuse(stream, ApiError::ShuttingDown));
                }
            }
        }
    }
    drop(listener);
}

/// Drives one connection until it ends, or until it has been idle too long.
async fn run_connection<E: std::fmt::Display>(
    connection: impl Future<Output = Result<(), E>>,
    activity: Arc<Activity>,
    limits: ServerLimits,
    peer: SocketAddr,
    _slot: Slot,
) {
    let mut connection = pin!(connection);
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            ended = &mut connection => {
                if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                if activity.is_idle_past(&limits) {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// Answers a connection with the JSON 503 `why` (over the limits, or shutting down) and
/// closes it, reading (and discarding) what it sent meanwhile so that the close does not
/// reset the answer away.
async fn refuse(mut stream: TcpStream, why: ApiError) {
    let answer = why.to_http1_bytes();
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Counts open connections, in all and per client address.
#[derive(Debug, Default)]
struct OpenConnections {
    per_client: Mutex<HashMap<IpAddr, usize>>,
    total: AtomicUsize,
}

impl OpenConnections {
    /// A slot for one more connection from `client`, if the limits allow it.
    fn take(self: &Arc<Self>, client: IpAddr, limits: &ServerLimits) -> Option<Slot> {
        let mut per_client = self.per_client.lock().expect("not poisoned");
        let from_client = per_client.entry(client).or_insert(0);
        if *from_client >= limits.max_connections_per_client
            || self.total.load(Ordering::Relaxed) >= limits.max_connections
        {
            if *from_client == 0 {
                per_client.remove(&client);
            }
            return None;
        }
        *from_client += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            open: Arc::clone(self),
            client,
        })
    }
}

/// One open connection's place in [`OpenConnections`]; given back when dropped.
#[derive(Debug)]
struct Slot {
    open: Arc<OpenConnections>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_client = self.open.per_client.lock().expect("not poisoned");
        if let Some(count) = per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                per_client.remove(&self.client);
            }
        }
        self.open.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a connection is doing: requests being handled (from the head's arrival until the
/// response body is written), and since when it has been idle.
#[derive(Debug)]
struct Activity {
    busy: AtomicUsize,
    served: AtomicBool,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
        }
    }

    /// How long this connection may stay idle: until its first request head, the read
    /// timeout; after a response, the keep-alive time.
    fn allowed(&self, limits: &ServerLimits) -> Duration {
        if self.served.load(Ordering::Relaxed) {
            limits.keep_alive
        } else {
            limits.read_timeout
        }
    }

    /// When to look again.
    fn deadline(&self, limits: &ServerLimits) -> Instant {
        let idle_since = *self.idle_since.lock().expect("not poisoned");
        if self.busy.load(Ordering::Relaxed) > 0 {
            return Instant::now() + self.allowed(limits);
        }
        idle_since + self.allowed(limits)
    }

    /// Whether no request is in progress and the connection has been idle too long.
    fn is_idle_past(&self, limits: &ServerLimits) -> bool {
        let idle_since = *self.idle_since.lock().expect("not poisoned");
        self.busy.load(Ordering::Relaxed) == 0 && idle_since.elapsed() >= self.allowed(limits)
    }
}

/// A request in progress on a connection; the connection is idle again once dropped (with the
/// response body, once it is written).
#[derive(Debug)]
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.served.store(true, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().expect("not poisoned") = Instant::now();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in progress until it is dropped.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            read_timeout: Duration::from_secs(1),
            keep_alive: Duration::from_secs(2),
            max_connections: 3,
            max_connections_per_client: 2,
            shutdown_grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn connections_are_capped_in_all_and_per_client() {
        let open = Arc::new(OpenConnections::default());
        let (a, b, c) = (
            IpAddr::from([10, 0, 0, 1]),
            IpAddr::from([10, 0, 0, 2]),
            IpAddr::from([10, 0, 0, 3]),
        );
        let first = open.take(a, &limits()).unwrap();
        let _second = open.take(a, &limits()).unwrap();
        assert!(open.take(a, &limits()).is_none(), "per client");
        let _third = open.take(b, &limits()).unwrap();
        assert!(open.take(c, &limits()).is_none(), "in all");
        drop(first);
        let _fourth = open.take(c, &limits()).unwrap();
        assert_eq!(open.per_client.lock().unwrap().len(), 3);
    }

    #[test]
    fn idle_time_counts_only_between_requests() {
        let activity = Arc::new(Activity::new());
        assert_eq!(activity.allowed(&limits()), Duration::from_secs(1));
        let busy = Busy::new(Arc::clone(&activity));
        *activity.idle_since.lock().unwrap() -= Duration::from_secs(10);
        assert!(
            !activity.is_idle_past(&limits()),
            "a request is in progress"
        );
        drop(busy);
        assert_eq!(activity.allowed(&limits()), Duration::from_secs(2));
        assert!(!activity.is_idle_past(&limits()));
        *activity.idle_since.lock().unwrap() -= Duration::from_secs(3);
        assert!(activity.is_idle_past(&limits()));
    }
}
