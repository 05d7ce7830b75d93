//! Source `socketio_admin`: a WebSocket client of `@socket.io/admin-ui`'s admin namespace.
//!
//! admin-ui broadcasts `server_stats` (per-namespace socket counts, engine client count) to
//! its namespace every 2 s, from every server behind the adapter. This client logs in,
//! forwards each server's stats as a report, answers pings, and reconnects with backoff.
//! It is a small client of its own rather than `rust_socketio`, whose `connect()` returns
//! before the namespace is accepted, so a refused login could not be told from a slow one.

mod config;
pub(crate) mod protocol;
mod tls;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub(crate) use self::config::Config;
use self::protocol::{EnginePacket, Handshake, PacketType, ProtocolError};
use super::context::{SourceContext, SourceType};
use crate::backoff::Backoff;
use crate::config::secret::SecretError;
use crate::update::{Event, Reason, ServerCounts, Silence};

const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Large enough for 100 000 namespaces in one `server_stats`, small enough to bound memory.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why one connection ended. Each maps to a bounded [`Reason`].
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot read the admin password: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("cannot connect: {0}")]
    Connect(tungstenite::Error),
    #[error("no answer within {0:?}")]
    ConnectTimeout(Duration),
    #[error("no Engine.IO handshake within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the admin namespace did not accept the connection within {0:?}")]
    AcceptTimeout(Duration),
    #[error(
        "credentials refused ({message:?}): check username and password against the app's \
         instrument(io, {{ auth }}) options; the exporter needs the plain password, the app \
         the bcrypt hash"
    )]
    Refused { message: String },
    #[error(
        "connection to namespace {namespace} refused ({message:?}): is the app instrumented \
         with @socket.io/admin-ui, and is admin_namespace its namespaceName?"
    )]
    NamespaceRefused { namespace: String, message: String },
    #[error("no ping from the server within {0:?} (pingInterval + pingTimeout)")]
    PingTimeout(Duration),
    #[error("no server_stats within {0:?} (stale_after_secs)")]
    StatsTimeout(Duration),
    #[error("the server closed the connection")]
    Closed,
    #[error("connection lost: {0}")]
    Lost(tungstenite::Error),
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
}

impl SessionError {
    fn reason(&self) -> Reason {
        match self {
            SessionError::Secret(_) | SessionError::Tls(_) => Reason::Config,
            SessionError::Connect(_) | SessionError::ConnectTimeout(_) => Reason::Connect,
            SessionError::HandshakeTimeout(_) | SessionError::AcceptTimeout(_) => Reason::Handshake,
            SessionError::Refused { .. } => Reason::Auth,
            SessionError::NamespaceRefused { .. } => Reason::Namespace,
            SessionError::PingTimeout(_) => Reason::PingTimeout,
            SessionError::StatsTimeout(_) => Reason::StatsTimeout,
            SessionError::Closed | SessionError::Lost(_) => Reason::Closed,
            SessionError::Protocol(_) => Reason::Protocol,
        }
    }
}

impl SourceType for Config {
    const REASONS: &'static [Reason] = &[
        Reason::Connect,
        Reason::Handshake,
        Reason::Auth,
        Reason::Namespace,
        Reason::Config,
        Reason::PingTimeout,
        Reason::Closed,
        Reason::Protocol,
        Reason::TooManyServers,
        Reason::StatsTimeout,
        Reason::ServerIdNotSeen,
        Reason::Internal,
    ];
    const SILENCE: Silence = Silence::Stale(Reason::StatsTimeout);
    async fn run(self, cx: SourceContext) {
        let mut source = AdminSource {
            config: self,
            backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
            ever_delivered: false,
            cx,
        };
        loop {
            let error = match source.session().await {
                Ok(()) => return,
                Err(error) => error,
            };
            let delay = match error {
                // Retrying soon cannot help, and each login costs the app a bcrypt check.
                SessionError::Protocol(ProtocolError::OldAdminUi) => BACKOFF_MAX,
                _ => source.backoff.next_delay(),
            };
            let url = source.config.url.to_string();
            source
                .cx
                .failed(error.reason(), &url, &error, Some(delay))
                .await;
            if !source.cx.sleep(delay).await {
                return;
            }
        }
    }
}

struct AdminSource {
    config: Config,
    cx: SourceContext,
    backoff: Backoff,
    ever_delivered: bool,
}

impl AdminSource {
    /// One connection from dial to end. `Ok` only when cancelled.
    async fn session(&mut self) -> Result<(), SessionError> {
        let auth = match &self.config.credentials {
            Some(c) => {
                serde_json::json!({ "username": c.username, "password": c.password.read()? })
            }
            None => serde_json::json!({}),
        };
        let connect_timeout = self.config.connect_timeout;
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let mut request = self
            .config
            .url
            .as_str()
            .into_client_request()
            .map_err(SessionError::Connect)?;
        request
            .headers_mut()
            .extend(self.config.headers.iter().cloned());
        let connector = match self.config.url.scheme() {
            "wss" => {
                Connector::Rustls(tls::client_config(&self.config).map_err(SessionError::Tls)?)
            }
            _ => Connector::Plain,
        };
        let dial = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            true,
            Some(connector),
        );
        let (mut ws, _) = timeout(connect_timeout, dial)
            .await
            .map_err(|_| SessionError::ConnectTimeout(connect_timeout))?
            .map_err(SessionError::Connect)?;

        let handshake = match timeout(connect_timeout, next_text(&mut ws)).await {
            Err(_) => return Err(SessionError::HandshakeTimeout(connect_timeout)),
            Ok(frame) => match protocol::parse_engine(&frame?)? {
                EnginePacket::Open(handshake) => handshake,
                other => {
                    return Err(ProtocolError::Open(format!(
                        "expected the open packet first, got {other:?}"
                    ))
                    .into());
                }
            },
        };

        let namespace = self.config.admin_namespace.clone();
        send(&mut ws, protocol::connect_frame(&namespace, &auth)).await?;
        drop(auth);
        timeout(connect_timeout, accepted(&mut ws, &namespace))
            .await
            .map_err(|_| SessionError::AcceptTimeout(connect_timeout))??;
        self.cx.send(Event::Connected).await;
        tracing::debug!(source = self.cx.name.as_str(), url = %self.config.url, "admin namespace accepted the connection");

        let cancel = self.cx.cancel.clone();
        let result = self.receive(&mut ws, handshake, &cancel).await;
        if result.is_ok() {
            // Shutting down: leave politely so the app's admin namespace count drops at once.
            let _ = send(&mut ws, protocol::disconnect_frame(&namespace)).await;
            let _ = ws.close(None).await;
        }
        result
    }

    /// Forwards `server_stats` until the connection fails or `cancel` fires.
    async fn receive(
        &mut self,
        ws: &mut Socket,
        handshake: Handshake,
        cancel: &CancellationToken,
    ) -> Result<(), SessionError> {
        let ping_window = handshake.ping_interval + handshake.ping_timeout;
        let mut ping_deadline = Instant::now() + ping_window;
        let stale_after = self.cx.sync.stale_after;
        let mut stats_deadline = Instant::now() + stale_after;
        loop {
            let frame = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = sleep_until(ping_deadline) => return Err(SessionError::PingTimeout(ping_window)),
                _ = sleep_until(stats_deadline) => return Err(SessionError::StatsTimeout(stale_after)),
                frame = next_text(ws) => frame?,
            };
            let message = match protocol::parse_engine(&frame)? {
                EnginePacket::Ping => {
                    ping_deadline = Instant::now() + ping_window;
                    send(ws, "3".to_owned()).await?;
                    continue;
                }
                EnginePacket::Close => return Err(SessionError::Closed),
                EnginePacket::Message(message) => message,
                _ => continue,
            };
            let packet = protocol::parse_packet(message)?;
            if packet.namespace != self.config.admin_namespace {
                continue;
            }
            match packet.kind {
                PacketType::Disconnect => return Err(SessionError::Closed),
                PacketType::Event => {
                    let (name, argument) = protocol::parse_event(packet.data)?;
                    if name != "server_stats" {
                        continue;
                    }
                    let argument = argument.ok_or(ProtocolError::Payload {
                        what: "server_stats",
                        detail: "event without an argument".into(),
                    })?;
                    // Of a server outside the scope only the id is read: the reconcile
                    // step keeps it by id only (for the server_id_not_seen warning).
                    let stats = protocol::parse_server_stats(argument, |id| self.cx.in_scope(id))?;
                    stats_deadline = Instant::now() + stale_after;
                    // The frame can be megabytes; what it held is parsed now.
                    drop(frame);
                    self.deliver(stats).await;
                }
                _ => {}
            }
        }
    }

    async fn deliver(&mut self, stats: protocol::ServerStats) {
        let hidden = (!self.config.include_admin_namespace).then_some(&self.config.admin_namespace);
        let engine = stats.engine();
        let namespaces = stats
            .namespaces
            .into_iter()
            .filter(|n| Some(&n.name) != hidden)
            .map(|n| (n.name, n.sockets_count))
            .collect();
        self.cx
            .send(Event::Counts(ServerCounts {
                server_id: stats.server_id,
                clients: stats.clients_count,
                namespaces,
                age: Duration::ZERO,
                seq: None,
                engine,
            }))
            .await;
        if self.cx.recovered() || !self.ever_delivered {
            tracing::info!(source = self.cx.name.as_str(), url = %self.config.url, "receiving server_stats");
        }
        self.ever_delivered = true;
        self.backoff.reset();
    }
}

/// Waits for the namespace CONNECT ack, answering pings meanwhile.
async fn accepted(ws: &mut Socket, namespace: &str) -> Result<(), SessionError> {
    loop {
        let frame = next_text(ws).await?;
        let message = match protocol::parse_engine(&frame)? {
            EnginePacket::Ping => {
                send(ws, "3".to_owned()).await?;
                continue;
            }
            EnginePacket::Close => return Err(SessionError::Closed),
            EnginePacket::Message(message) => message,
            _ => continue,
        };
        let packet = protocol::parse_packet(message)?;
        if packet.namespace != namespace {
            continue;
        }
        match packet.kind {
            PacketType::Connect => return Ok(()),
            PacketType::ConnectError => {
                let message = protocol::connect_error_message(packet.data);
                return Err(if message == "invalid credentials" {
                    SessionError::Refused { message }
                } else {
                    SessionError::NamespaceRefused {
                        namespace: namespace.to_owned(),
                        message,
                    }
                });
            }
            PacketType::Disconnect => return Err(SessionError::Closed),
            // admin-ui emits `session` before the ack; nothing to do with it.
            _ => {}
        }
    }
}

/// The next text frame; binary frames (attachments) are skipped.
/// Not copied: a `server_stats` of 100 000 namespaces is megabytes.
async fn next_text(ws: &mut Socket) -> Result<Utf8Bytes, SessionError> {
    loop {
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(SessionError::Closed),
            Some(Err(e)) => return Err(SessionError::Lost(e)),
            Some(Ok(Message::Text(text))) => return Ok(text),
            Some(Ok(_)) => {}
        }
    }
}

async fn send(ws: &mut Socket, frame: String) -> Result<(), SessionError> {
    ws.send(Message::text(frame))
        .await
        .map_err(SessionError::Lost)
}
