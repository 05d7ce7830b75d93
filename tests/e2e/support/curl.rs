//! curl, the client people test exporters with.

use std::process::Command;

use super::require_tool;

/// What curl got: the status and body, or curl's own failure (exit code and message)
/// when there was no HTTP answer, e.g. a refused TLS handshake.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs `curl -sS --include <args>`, bounded to 10 s.
pub fn curl(args: &[&str]) -> Result<Answer, String> {
    let output = Command::new(require_tool("curl"))
        .args(["-sS", "--include", "--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        headers,
        body: raw[split..].to_vec(),
    })
}
