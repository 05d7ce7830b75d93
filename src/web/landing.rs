//! The landing page at `/`: what this exporter is and reads, for a person who opens it.
//! Built once from the configuration; everything from the configuration is HTML-escaped
//! and never includes a secret (endpoints lose their user info and query).

use std::fmt::Write as _;

use bytes::Bytes;

use crate::config::Config;
use crate::sources::Scope;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const REVISION: &str = env!("SOCKETIO_EXPORTER_REVISION");

/// The page for `config`.
pub(crate) fn page(config: &Config) -> Bytes {
    let mut rows = String::new();
    for source in &config.sources {
        let scope = match &source.scope {
            Scope::Local { server_id } => format!("local (server {server_id})"),
            Scope::Cluster => "cluster".to_owned(),
        };
        let _ = writeln!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&source.name),
            escape(source.kind.type_name()),
            escape(&scope),
            escape(&source.kind.endpoint()),
        );
    }
    let mut page = String::with_capacity(1024 + rows.len());
    let _ = write!(
        page,
        "<!doctype html>
<html><head><meta charset=\"utf-8\"><title>socketio-exporter</title></head>
<body><h1>socketio-exporter</h1>
<p>Socket.IO connection counts for Prometheus.</p>
<p>Version {version}, revision {revision}; environment {environment}.</p>
<ul><li><a href=\"/metrics\">/metrics</a></li><li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li></ul>
<h2>Sources</h2>
<table><tr><th>name</th><th>type</th><th>scope</th><th>endpoint</th></tr>
{rows}</table>
</body></html>
",
        version = escape(VERSION),
        revision = escape(REVISION),
        environment = escape(&config.environment),
    );
    Bytes::from(page)
}

/// Escapes text for HTML element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_text_is_escaped_and_secrets_stay_out() {
        let config = Config::parse(
            r#"environment = "<b>prod</b>"
[[sources]]
type = "http_json"
name = "a&b"
endpoint = "https://app:3000/stats?token=hunter2"
[[sources]]
type = "socketio_admin"
endpoint = "http://127.0.0.1:3000"
password = "hunter2"
username = "admin"
server_id = "pod-<1>"
"#,
        )
        .unwrap();
        let page = String::from_utf8(page(&config).to_vec()).unwrap();
        assert!(
            page.contains("environment &lt;b&gt;prod&lt;/b&gt;"),
            "{page}"
        );
        assert!(
            page.contains("<td>a&amp;b</td><td>http_json</td>"),
            "{page}"
        );
        assert!(page.contains("https://app:3000/stats"), "{page}");
        assert!(page.contains("local (server pod-&lt;1&gt;)"), "{page}");
        assert!(page.contains("ws://127.0.0.1:3000/socket.io/"), "{page}");
        assert!(!page.contains("hunter2"), "{page}");
        assert!(page.contains(REVISION), "{page}");
    }
}
