//! Source `push`: `POST /push/report` (a full report) and `POST /push/events` (batched
//! connection events) on the exporter's own listener.
//!
//! Bad input always gets a 4xx with a JSON `{"error": "..."}` naming the problem, never a
//! 5xx, and is counted under its reason.

mod config;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};

pub(crate) use self::config::Config;
use super::context::{Outbox, SourceContext, SourceType};
use super::format::{self, FormatError};
use crate::telemetry::Telemetry;
use crate::update::{Event, Reason, Silence};

/// A client gets this long to send a push body once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl SourceType for Config {
    const REASONS: &'static [Reason] = &[
        Reason::Unauthorized,
        Reason::Timeout,
        Reason::TooLarge,
        Reason::InvalidJson,
        Reason::InvalidReport,
        Reason::NoReport,
        Reason::Stale,
        Reason::TooManyServers,
        Reason::TooManyHeld,
        Reason::ServerIdNotSeen,
        Reason::Internal,
    ];
    const SILENCE: Silence = Silence::Listens;
    /// Pushes arrive through the HTTP server ([`PushEndpoint`]); the source itself only
    /// says that it listens.
    async fn run(self, cx: SourceContext) {
        cx.send(Event::Connected).await;
    }
}

/// Why a push was refused: the status, the reason it is counted under (if any), and
/// the message for the client.
type Rejection = (StatusCode, Option<Reason>, String);

/// What a push carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Report,
    Events,
}

/// The push source as the HTTP server sees it.
pub(crate) struct PushEndpoint {
    pub name: String,
    pub config: Config,
    pub outbox: Outbox,
    pub telemetry: Arc<Telemetry>,
}

impl PushEndpoint {
    pub(crate) async fn handle(
        &self,
        kind: Kind,
        request: Request<Incoming>,
    ) -> Response<Full<Bytes>> {
        // A panic here would be a bug; it must still not reset the client's connection.
        let accepted = AssertUnwindSafe(self.accept(kind, request))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(source = self.name, "bug: the push handler panicked");
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some(Reason::Internal),
                    "internal error".to_owned(),
                ))
            });
        match accepted {
            Ok(accepted) => json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "accepted": accepted }),
            ),
            Err((status, reason, message)) => {
                if let Some(reason) = reason {
                    self.telemetry.source_error(&self.name, reason);
                }
                tracing::debug!(source = self.name, %status, "push rejected: {message}");
                let mut response = json(status, &serde_json::json!({ "error": message }));
                if status == StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"socketio-exporter\""),
                    );
                }
                response
            }
        }
    }

    /// The number of reports or events accepted, or the rejection.
    async fn accept(&self, kind: Kind, request: Request<Incoming>) -> Result<usize, Rejection> {
        self.check_headers(&request)?;
        let body = self.read_body(request).await?;
        let rejected = |e: FormatError| (StatusCode::BAD_REQUEST, Some(e.reason()), e.to_string());
        match kind {
            Kind::Report => {
                let report =
                    format::parse_report(&body, SystemTime::now(), None).map_err(rejected)?;
                self.outbox.send(Event::Counts(report)).await;
                Ok(1)
            }
            Kind::Events => {
                let deltas = format::parse_events(&body).map_err(rejected)?;
                let accepted = deltas.len();
                self.outbox.send(Event::Deltas(deltas)).await;
                Ok(accepted)
            }
        }
    }

    /// The bearer token and the content type.
    fn check_headers(&self, request: &Request<Incoming>) -> Result<(), Rejection> {
        if let Some(token) = &self.config.token {
            let token = token.read().ok().filter(|t| !t.is_empty()).ok_or_else(|| {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the exporter cannot read its push token".to_owned(),
                )
            })?;
            let given = request.headers().get(AUTHORIZATION).and_then(bearer);
            if !given.is_some_and(|given| constant_time_eq(given, token.as_bytes())) {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    Some(Reason::Unauthorized),
                    "missing or wrong bearer token".to_owned(),
                ));
            }
        }
        if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err((
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    Some(Reason::InvalidJson),
                    format!("content-type {essence:?}, expected application/json"),
                ));
            }
        }
        Ok(())
    }

    /// The body, at most `max_body_bytes` of it.
    async fn read_body(&self, request: Request<Incoming>) -> Result<Bytes, Rejection> {
        let limit = self.config.max_body_bytes;
        let too_large = || {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                Some(Reason::TooLarge),
                format!("body larger than {limit} bytes"),
            )
        };
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let body = tokio::time::timeout(
            BODY_READ_TIMEOUT,
            Limited::new(request.into_body(), limit).collect(),
        )
        .await
        .map_err(|_| {
            (
                StatusCode::REQUEST_TIMEOUT,
                Some(Reason::Timeout),
                format!("the body did not arrive within {BODY_READ_TIMEOUT:?}"),
            )
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    None,
                    format!("cannot read the body: {e}"),
                )
            }
        })?
        .to_bytes();
        Ok(body)
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The credentials of an `Authorization: Bearer <token>` header; the scheme is
/// case-insensitive (RFC 7235).
fn bearer(header: &HeaderValue) -> Option<&[u8]> {
    let value = header.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

/// Compares without leaking, through timing, how much of the token was right or how long
/// it is: the time depends on the length of `given` alone.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len() || expected.is_empty());
    for (i, g) in given.iter().enumerate() {
        let e = expected.get(i).copied().unwrap_or(!g);
        difference |= g ^ e;
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abd", b"abc"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"abc"));
        assert!(!constant_time_eq(b"", b""), "an empty token never matches");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc"] {
            let value = HeaderValue::from_static(header);
            assert_eq!(bearer(&value), Some(&b"abc"[..]), "{header}");
        }
        for header in ["Basic abc", "Bearerabc", "Bearer ", "Bear"] {
            assert_eq!(bearer(&HeaderValue::from_static(header)), None, "{header}");
        }
    }
}
