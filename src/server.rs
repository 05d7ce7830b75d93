//! The HTTP server: `/metrics`, `/healthz`, `/readyz` and a landing page at `/`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::log_limit::{ErrorLog, Fields};
use crate::readiness::Readiness;
use crate::sinks::prometheus;
use crate::snapshot::Snapshot;
use crate::sources::push::{self, PushEndpoint};
use crate::telemetry::Telemetry;

/// A client gets this long to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; further ones are closed at once, so that a flood of idle or
/// slow clients cannot grow memory without bound. Prometheus needs one.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// What the handlers read.
#[derive(Clone)]
pub(crate) struct State {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub telemetry: Arc<Telemetry>,
    /// Ready while the sync loop runs; never depends on the app.
    pub ready: Readiness,
    /// The push source's endpoints, when one is configured.
    pub push: Option<Arc<PushEndpoint>>,
}

/// Serves connections on `listener` until `cancel` fires, then lets open requests finish
/// for at most `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: State,
    cancel: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut over_cap = ErrorLog::<()>::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            let message = format!("{MAX_CONNECTIONS} connections are open: closing a new one");
            over_cap
                .failure((), Instant::now())
                .log(Fields::default(), &message);
            continue;
        };
        over_cap.recovered();
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(route(req, &state).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, "http connection ended: {e}");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("open http connections did not finish within {drain:?}");
    }
}

async fn route(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let push = match path {
        "/push/report" => Some(push::Kind::Report),
        "/push/events" => Some(push::Kind::Events),
        _ => None,
    };
    if let Some(kind) = push {
        let Some(endpoint) = &state.push else {
            return text(StatusCode::NOT_FOUND, "no push source is configured\n");
        };
        if req.method() != Method::POST {
            return not_allowed("POST");
        }
        return endpoint.handle(kind, req).await;
    }
    if !matches!(path, "/" | "/metrics" | "/healthz" | "/readyz") {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return not_allowed("GET, HEAD");
    }
    match path {
        "/metrics" => {
            let snapshot = state.snapshot.borrow().clone();
            let body = prometheus::render(&snapshot, &state.telemetry);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(prometheus::CONTENT_TYPE),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => {
            let mut response =
                Response::new(Full::new(Bytes::from_static(LANDING_PAGE.as_bytes())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
    }
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

const LANDING_PAGE: &str = "<!doctype html>
<html><head><title>socketio-exporter</title></head>
<body><h1>socketio-exporter</h1>
<p>Socket.IO connection counts for Prometheus.</p>
<ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li></ul>
</body></html>
";

/// Binds the listener; errors name the address.
pub(crate) async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))
}
