//! Validation of whole configuration files: every problem at once, with its key path.

use std::time::Duration;

use super::*;
use crate::sources::Scope;

fn problems(text: &str) -> Vec<String> {
    match Config::parse(text) {
        Err(ParseError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

const MINIMAL: &str = r#"
    environment = "test"
    [[sources]]
    type = "socketio_admin"
    endpoint = "http://127.0.0.1:3000"
"#;

#[test]
fn shipped_example_config_is_valid() {
    let text = include_str!("../../config.toml");
    // The password variable may be unset where tests run; check everything else.
    let problems = match Config::parse(text) {
        Ok(_) => Vec::new(),
        Err(ParseError::Invalid(problems)) => problems,
        Err(ParseError::Syntax(message)) => panic!("config.toml does not parse: {message}"),
    };
    let unexpected: Vec<_> = problems
        .iter()
        .filter(|p| !p.message.contains("is not set"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let config = Config::parse(MINIMAL).unwrap();
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.sync.interval, Duration::from_secs(2));
    assert_eq!(config.sync.stale_after, Duration::from_secs(10));
    let SourceKind::SocketioAdmin(admin) = &config.sources[0].kind else {
        panic!("expected a socketio_admin source")
    };
    assert_eq!(config.sources[0].name, "socketio_admin");
    assert_eq!(
        admin.url.as_str(),
        "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
    );
    assert_eq!(admin.admin_namespace, "/admin");
    assert!(!admin.include_admin_namespace);
    assert!(matches!(config.sources[0].scope, Scope::Local { .. }));
}

#[test]
fn every_problem_is_reported_at_once_with_its_key_path() {
    let found = problems(
        r#"
        environment = ""
        [listen]
        address = "localhost"
        [sync]
        interval_secs = 0
        [[sources]]
        type = "socketio_admin"
        endpoint = "/relative"
        username = "admin"
        [[sources]]
        type = "socketio_admin"
        name = "socketio_admin"
        endpoint = "ftp://x"
        password = "a"
        password_env = "B"
        "#,
    );
    let expected = [
        "environment: must not be empty",
        "listen.address: \"localhost\" is not an IP address",
        "sync.interval_secs: must be a positive number of seconds, got 0",
        "sources[0].endpoint: \"/relative\" is not an absolute URL (relative URL without a base)",
        "sources[0].username: is set but no password is",
        "sources[1].endpoint: \"ftp://x\": scheme \"ftp\" is not supported",
        "sources[1].password: set only one of password, password_env and password_file",
        "sources[1].username: missing: basic auth needs a username",
        "sources[1].name: duplicate source name \"socketio_admin\"",
    ];
    for want in expected {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let err = Config::parse("environment = \"x\"\n[sync]\nintervall_secs = 3\n").unwrap_err();
    let ParseError::Syntax(message) = err else {
        panic!("expected a syntax error, got {err:?}")
    };
    assert!(
        message.contains("unknown field `intervall_secs`"),
        "{message}"
    );

    let in_source = problems(&format!("{MINIMAL}\nintervall_secs = 3\n"));
    assert_eq!(in_source.len(), 1);
    assert!(
        in_source[0]
            .starts_with("sources[0]: unknown field `intervall_secs`, expected one of `endpoint`"),
        "{in_source:?}"
    );
}

#[test]
fn secrets_are_never_shown() {
    let config = Config::parse(&format!(
        "{MINIMAL}\nusername = \"admin\"\npassword = \"hunter2\"\n"
    ))
    .unwrap();
    let shown = format!("{config:?}\n{}", config.summary());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("inline (redacted)"));
}

#[test]
fn missing_password_variable_is_named() {
    let found = problems(&format!(
        "{MINIMAL}\nusername = \"admin\"\npassword_env = \"SOCKETIO_EXPORTER_TEST_SURELY_UNSET\"\n"
    ));
    assert_eq!(
        found,
        [
            "sources[0].password_env: environment variable SOCKETIO_EXPORTER_TEST_SURELY_UNSET is not set"
        ]
    );
}

#[test]
fn stale_after_must_outlast_admin_ui_stats_period() {
    let found = problems(&format!(
        "{MINIMAL}\n[sync]\ninterval_secs = 1\nstale_after_secs = 2\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("sync.stale_after_secs: must be longer than admin-ui's"));
}

#[test]
fn endpoint_with_custom_path() {
    let config = Config::parse(&format!("{MINIMAL}\npath = \"/ws/\"\n")).unwrap();
    let SourceKind::SocketioAdmin(admin) = &config.sources[0].kind else {
        panic!("expected a socketio_admin source")
    };
    assert_eq!(
        admin.url.as_str(),
        "ws://127.0.0.1:3000/ws/?EIO=4&transport=websocket"
    );
}

#[test]
fn tls_endpoints_take_a_ca_file_and_handshake_headers() {
    let config = Config::parse(&format!(
        "{}\nheaders = {{ Authorization = \"Bearer x\" }}\n",
        MINIMAL.replace("http://", "https://")
    ))
    .unwrap();
    let SourceKind::SocketioAdmin(admin) = &config.sources[0].kind else {
        panic!("expected a socketio_admin source")
    };
    assert_eq!(
        admin.url.as_str(),
        "wss://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
    );
    assert_eq!(admin.headers[0].0.as_str(), "authorization");
    assert!(!config.summary().contains("Bearer x"));
    assert_eq!(
        problems(&format!(
            "{MINIMAL}\nca_file = \"/nonexistent/ca.pem\"\nheaders = {{ Host = \"x\", \"bad name\" = \"y\" }}\n"
        )),
        [
            "sources[0].ca_file: only applies to an https:// or wss:// endpoint",
            "sources[0].headers: \"Host\" is set by the WebSocket handshake itself",
            "sources[0].headers: \"bad name\": not a valid HTTP header name and value",
        ]
    );
}

#[test]
fn a_push_listener_of_its_own_is_what_the_token_rule_checks() {
    let push = |extra: &str| {
        format!(
            "environment = \"t\"\n[listen]\naddress = \"0.0.0.0:8797\"\n[[sources]]\ntype = \"push\"\n{extra}"
        )
    };
    let on_loopback = Config::parse(&push("listen_address = \"127.0.0.1:8798\"")).unwrap();
    assert!(on_loopback.exposure_problems().is_empty());
    let on_main = Config::parse(&push("")).unwrap();
    assert_eq!(on_main.exposure_problems().len(), 1);
    assert_eq!(
        problems(&push("listen_address = \"localhost\"")),
        [
            "sources[0].listen_address: \"localhost\" is not an IP address with a port, e.g. \"127.0.0.1:8798\""
        ]
    );
}

#[test]
fn hostile_or_careless_source_settings_are_refused_at_load_naming_the_fix() {
    let found = problems(
        r#"
        environment = "test"
        [[sources]]
        type = "http_json"
        name = "json"
        endpoint = "http://ops:s3cret@127.0.0.1:3000/x"
        interval_secs = 8
        timeout_secs = 2
        headers = { "X-Tenant" = "a\nb" }
        [[sources]]
        type = "socketio_admin"
        endpoint = "http://admin:s3cret@127.0.0.1:3000"
        [[sources]]
        type = "push"
        token = ""
        "#,
    );
    assert_eq!(
        found,
        [
            "sources[0].endpoint: credentials in the URL are not supported (the URL is logged): use username with password_env or password_file, or bearer_token_env or bearer_token_file",
            "sources[0].interval_secs: interval_secs + timeout_secs (10s) must be below sync.stale_after_secs (10s), or the counts go stale between polls",
            "sources[0].headers: the value of \"X-Tenant\" is not a valid HTTP header value (control characters?)",
            "sources[1].endpoint: credentials in the URL are not supported (the URL is logged): use username with password_env or password_file",
            "sources[2].token: is empty: an empty token would accept any \"Bearer \" header; set a token, or leave the token keys out on a loopback listener",
        ]
    );
    assert!(found.iter().all(|p| !p.contains("s3cret")));
}
