//! A scripted Socket.IO server, for faults the real one cannot be made to produce:
//! garbage frames, a server that stops pinging.

use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

pub type Socket = WebSocket<TcpStream>;

pub struct FakeServer {
    pub port: u16,
    /// The first frame of each connection the client made (its namespace CONNECT).
    pub connects: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    /// Listens on an ephemeral port. Each connection gets `open` (an Engine.IO open packet),
    /// has its CONNECT accepted for `/admin`, and is then handed to `script`.
    pub fn start(open: &str, script: impl Fn(&mut Socket) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connects = Arc::new(Mutex::new(Vec::new()));
        let seen = connects.clone();
        let open = open.to_owned();
        let script = Arc::new(script);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (open, seen, script) = (open.clone(), seen.clone(), script.clone());
                thread::spawn(move || {
                    let Ok(mut ws) = tungstenite::accept(stream) else {
                        return;
                    };
                    if ws.send(Message::text(open)).is_err() {
                        return;
                    }
                    let Ok(Message::Text(connect)) = ws.read() else {
                        return;
                    };
                    seen.lock().unwrap().push(connect.as_str().to_owned());
                    if ws
                        .send(Message::text(r#"40/admin,{"sid":"fake"}"#))
                        .is_err()
                    {
                        return;
                    }
                    script(&mut ws);
                });
            }
        });
        FakeServer { port, connects }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// An Engine.IO open packet with the given heartbeat timing.
pub fn open_packet(ping_interval_ms: u64, ping_timeout_ms: u64) -> String {
    format!(
        r#"0{{"sid":"fake","upgrades":[],"pingInterval":{ping_interval_ms},"pingTimeout":{ping_timeout_ms},"maxPayload":1000000}}"#
    )
}

/// A well-formed `server_stats` event frame.
pub fn stats_frame(server_id: &str, namespaces: &[(&str, u64)]) -> String {
    let namespaces: Vec<_> = namespaces
        .iter()
        .map(|(name, n)| serde_json::json!({"name": name, "socketsCount": n}))
        .collect();
    let stats =
        serde_json::json!({"serverId": server_id, "clientsCount": 1, "namespaces": namespaces});
    format!(r#"42/admin,["server_stats",{stats}]"#)
}
