//! The HTTP server: `/metrics`, `/healthz`, `/readyz`, `/-/reload`, `/-/quit`, a landing page at
//! `/`, and the push routes, on the main listener or on a push listener of their own. TLS,
//! basic auth and extra headers come from the web layer (`web/`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::log_limit::{ErrorLog, Fields};
use crate::readiness::Readiness;
use crate::reload::{PushSlot, ReloadHandle};
use crate::snapshot::Snapshot;
use crate::sources::push;
use crate::telemetry::Telemetry;
use crate::web::scrape::ScrapeCache;
use crate::web::{Loaded, Web, tls};

/// A client gets this long to finish the TLS handshake, and again to send its request
/// headers.
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
    /// The push source's endpoints, while one is configured.
    pub push: PushSlot,
    /// `POST /-/reload`, with `--web.enable-lifecycle`.
    pub reload: Option<ReloadHandle>,
    /// `POST /-/quit`, with `--web.enable-lifecycle`: starts the shutdown a SIGTERM starts.
    pub quit: Option<CancellationToken>,
    /// TLS, basic auth and extra headers.
    pub web: Arc<Web>,
    pub scrape: Arc<ScrapeCache>,
    /// The landing page, built from the configuration and rebuilt by each reload.
    pub landing: watch::Receiver<Bytes>,
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routes {
    /// Everything: the default single listener.
    All,
    /// Everything but `/push/*`, which has a listener of its own.
    AllButPush,
    /// Only `/push/*`.
    PushOnly,
}

/// Serves connections on `listener` until `cancel` fires, then lets open requests finish
/// for at most `drain`.
async fn serve(
    listener: TcpListener,
    state: State,
    routes: Routes,
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
        let connection = connection(stream, peer, state.clone(), routes, graceful.watcher());
        tokio::spawn(async move {
            connection.await;
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

/// One connection: the TLS handshake when TLS is on, then HTTP/1.1.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: State,
    routes: Routes,
    watcher: Watcher,
) {
    let tls = state.web.current().tls.clone();
    let Some(config) = tls else {
        return http(TokioIo::new(stream), peer, state, routes, watcher).await;
    };
    match tls::handshake(stream, config, HEADER_READ_TIMEOUT).await {
        Ok(stream) => http(TokioIo::new(stream), peer, state, routes, watcher).await,
        Err(e) => tracing::debug!(%peer, "connection refused: {e}"),
    }
}

async fn http<I>(io: I, peer: SocketAddr, state: State, routes: Routes, watcher: Watcher)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(req, &state, routes).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, "http connection ended: {e}");
    }
}

/// Routes the request under the web config in force, and adds its extra headers.
async fn handle(req: Request<Incoming>, state: &State, routes: Routes) -> Response<Full<Bytes>> {
    let web = state.web.current();
    let mut response = route(req, state, routes, &web).await;
    for (name, value) in &web.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn route(
    req: Request<Incoming>,
    state: &State,
    routes: Routes,
    web: &Loaded,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let push = match path {
        "/push/report" => Some(push::Kind::Report),
        "/push/events" => Some(push::Kind::Events),
        _ => None,
    };
    if let Some(kind) = push.filter(|_| routes != Routes::AllButPush) {
        // Push has its bearer token (the push source's `token`), never basic auth.
        let endpoint = state.push.borrow().clone();
        let Some(endpoint) = endpoint else {
            return text(StatusCode::NOT_FOUND, "no push source is configured\n");
        };
        if req.method() != Method::POST {
            return not_allowed("POST");
        }
        return endpoint.handle(kind, req).await;
    }
    if routes == Routes::PushOnly
        || !matches!(
            path,
            "/" | "/metrics" | "/healthz" | "/readyz" | "/-/reload" | "/-/quit"
        )
    {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    // Probes stay open: kubelet cannot send basic auth, and they reveal nothing.
    let probe = matches!(path, "/healthz" | "/readyz");
    if !probe
        && !web.users.is_empty()
        && !(state.web.auth)
            .allows(&web.users, req.headers().get(AUTHORIZATION))
            .await
    {
        return unauthorized();
    }
    if path == "/-/reload" {
        return reload(req.method(), state.reload.as_ref()).await;
    }
    if path == "/-/quit" {
        return quit(req.method(), state.quit.as_ref());
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return not_allowed("GET, HEAD");
    }
    match path {
        "/metrics" => {
            let snapshot = state.snapshot.borrow().clone();
            state
                .scrape
                .response(req.headers(), snapshot, &state.telemetry)
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.ready.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => {
            let mut response = Response::new(Full::new(state.landing.borrow().clone()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
    }
}

/// `POST` or `PUT /-/reload`, answered as Prometheus does: 403 without
/// `--web.enable-lifecycle`, and once reloaded, 200 or 500 with why it was refused.
async fn reload(method: &Method, reload: Option<&ReloadHandle>) -> Response<Full<Bytes>> {
    let reload = match lifecycle(method, reload) {
        Ok(reload) => reload,
        Err(refused) => return *refused,
    };
    match reload.reload().await {
        Ok(()) => text(StatusCode::OK, "config reloaded\n"),
        Err(e) => {
            let mut response = text(StatusCode::INTERNAL_SERVER_ERROR, "");
            *response.body_mut() =
                Full::new(Bytes::from(format!("failed to reload config: {e}\n")));
            response
        }
    }
}

/// `POST` or `PUT /-/quit`, answered as Prometheus does: 403 without
/// `--web.enable-lifecycle`, else 200 and the graceful shutdown begins.
fn quit(method: &Method, quit: Option<&CancellationToken>) -> Response<Full<Bytes>> {
    match lifecycle(method, quit) {
        Ok(quit) => {
            tracing::info!("shutting down: asked through /-/quit");
            quit.cancel();
            text(StatusCode::OK, "Requesting termination... Goodbye!\n")
        }
        Err(refused) => *refused,
    }
}

/// A lifecycle endpoint's handle, or the answer when the method is wrong or the lifecycle
/// API is off.
fn lifecycle<'a, T>(
    method: &Method,
    handle: Option<&'a T>,
) -> Result<&'a T, Box<Response<Full<Bytes>>>> {
    if !matches!(*method, Method::POST | Method::PUT) {
        return Err(Box::new(not_allowed("POST, PUT")));
    }
    handle.ok_or_else(|| {
        Box::new(text(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled.\n",
        ))
    })
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response
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

/// The bound listeners: the main one, and the push source's own when it has one.
pub(crate) struct Listeners {
    main: TcpListener,
    push: Option<TcpListener>,
}

impl Listeners {
    /// Binds every listener at start and logs each address.
    pub(crate) async fn bind(
        main: SocketAddr,
        push: Option<SocketAddr>,
        tls: bool,
    ) -> anyhow::Result<Listeners> {
        let main = bind(main).await?;
        tracing::info!(address = %main.local_addr()?, tls, "listening");
        let push = match push {
            Some(address) => {
                let push = bind(address).await?;
                tracing::info!(address = %push.local_addr()?, tls, "push listening");
                Some(push)
            }
            None => None,
        };
        Ok(Listeners { main, push })
    }

    /// Serves every listener until `cancel` fires.
    pub(crate) fn spawn(
        self,
        state: State,
        cancel: &CancellationToken,
        tasks: &TaskTracker,
        drain: Duration,
    ) {
        let main_routes = match self.push {
            Some(push) => {
                let serve = serve(push, state.clone(), Routes::PushOnly, cancel.clone(), drain);
                tasks.spawn(serve);
                Routes::AllButPush
            }
            None => Routes::All,
        };
        tasks.spawn(serve(self.main, state, main_routes, cancel.clone(), drain));
    }
}

/// Binds one listener; errors name the address.
async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))
}
