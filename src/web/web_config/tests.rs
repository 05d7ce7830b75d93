//! The toolkit's own test files (exporter-toolkit `web/testdata`), good and bad, and the
//! messages a user sees.

use super::*;

fn parse(text: &str) -> Result<WebConfig, ParseError> {
    WebConfig::parse(text, Path::new("/etc/exporter"))
}

fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ParseError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

const USERS: &str = "basic_auth_users:
  alice: $2y$12$1DpfPeqF9HzHJt.EWswy1exHluGfbhnn3yXhR7Xes6m3WJqFg0Wby
  carol: $2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu
";

#[test]
fn empty_files_mean_plain_http_without_auth() {
    for text in ["", "# nothing\n", "basic_auth_users:\n"] {
        let config = parse(text).unwrap();
        assert!(config.tls.is_none() && config.users.is_empty() && config.headers.is_empty());
    }
}

#[test]
fn toolkit_good_files_load_with_paths_relative_to_the_file() {
    let config = parse(&format!(
        "tls_server_config:
  cert_file: \"server.crt\"
  key_file: \"/abs/server.key\"
  client_auth_type: \"RequireAndVerifyClientCert\"
  client_ca_file: \"client_selfsigned.pem\"
  min_version: TLS13
{USERS}http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
    X-Content-Type-Options: nosniff
    X-XSS-Protection: 1
    Content-Security-Policy: \"default-src 'self' *.test.example.net\"
"
    ))
    .unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.cert, Pem::File("/etc/exporter/server.crt".into()));
    assert_eq!(tls.key, Pem::File("/abs/server.key".into()));
    assert_eq!(tls.client_auth, ClientAuth::RequireAndVerifyClientCert);
    assert_eq!(tls.versions, [&rustls::version::TLS13]);
    assert_eq!(config.users.len(), 2);
    assert_eq!(config.headers.len(), 5);

    let any = parse(
        "tls_server_config:\n  cert_file: a\n  key: \"-----BEGIN PRIVATE KEY-----\"\n  client_auth_type: RequireClientCert\n",
    )
    .unwrap();
    let any = any.tls.unwrap();
    assert_eq!(any.client_auth, ClientAuth::RequireAnyClientCert);
    assert!(matches!(any.key, Pem::Inline(_)));
    assert_eq!(any.versions.len(), 2);
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let Err(ParseError::Syntax(message)) =
        parse("tls_server_config:\n  cert_filse: \"server.crt\"\n")
    else {
        panic!("expected a syntax error");
    };
    assert!(
        message.starts_with("tls_server_config: unknown field `cert_filse`"),
        "{message}"
    );
    let Err(ParseError::Syntax(message)) = parse("hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n")
    else {
        panic!("expected a syntax error");
    };
    assert!(!message.is_empty());
}

#[test]
fn toolkit_bad_files_are_refused_with_every_problem() {
    assert_eq!(
        problems(
            "tls_server_config:\n  cert_file: \"\"\n  key_file: \"\"\n  client_auth_type: \"x\"\n"
        ),
        [
            "tls_server_config.client_auth_type: unknown value \"x\"; one of NoClientCert, \
             RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, \
             RequireAndVerifyClientCert",
            "tls_server_config.cert_file: missing: one of cert or cert_file is required",
            "tls_server_config.key_file: missing: one of key or key_file is required",
        ]
    );
    assert_eq!(
        problems("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: somefile\n"),
        [
            "tls_server_config.client_ca_file: is set without a client_auth_type: set \
          client_auth_type: RequireAndVerifyClientCert to require client certificates"
        ]
    );
    assert_eq!(
        problems(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n"
        ),
        [
            "tls_server_config.client_ca_file: missing: client_auth_type \
          RequireAndVerifyClientCert verifies client certificates against it"
        ]
    );
    assert_eq!(
        problems("basic_auth_users:\n  john: doe\n"),
        [
            "basic_auth_users.john: is not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'"
        ]
    );
}

#[test]
fn old_tls_versions_are_refused_plainly() {
    assert_eq!(
        problems(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n  max_version: TLS111\n"
        ),
        [
            "tls_server_config.min_version: TLS10 is not supported: socketio-exporter speaks \
             TLS 1.2 and 1.3 only; use TLS12 or TLS13",
            "tls_server_config.max_version: unknown TLS version \"TLS111\"; one of TLS12, TLS13",
        ]
    );
    assert_eq!(
        problems(
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n"
        ),
        ["tls_server_config.min_version: must not be above max_version"]
    );
}

#[test]
fn only_the_toolkits_headers_and_values_are_allowed() {
    assert_eq!(
        problems(
            "http_server_config:\n  headers:\n    Content-Type: foo\n    X-Frame-Options: foo\n    X-Content-Type-Options: sniff\n"
        ),
        [
            "http_server_config.headers.Content-Type: this header cannot be configured; one of \
             Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, \
             X-XSS-Protection, Content-Security-Policy",
            "http_server_config.headers.X-Content-Type-Options: must be one of nosniff, got \"sniff\"",
            "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, got \"foo\"",
        ]
    );
}

#[test]
fn toolkit_features_this_exporter_lacks_are_named_not_ignored() {
    let found = problems(
        "rate_limit:\n  interval: 1s\n  burst: 0\ntls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\n",
    );
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "rate_limit",
            "tls_server_config.client_allowed_sans",
            "tls_server_config.cipher_suites",
            "tls_server_config.curve_preferences",
        ]
    );
}

#[test]
fn hashes_never_show_in_messages() {
    let found = problems("basic_auth_users:\n  bob: not-a-hash-but-secret\n").join("\n");
    assert!(!found.contains("not-a-hash-but-secret"), "{found}");
}
