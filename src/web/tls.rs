//! TLS on the exporter's listeners: a rustls `ServerConfig` built from the web config's
//! `tls_server_config`, the toolkit's client certificate policies, and the handshake with
//! a clean refusal of plain HTTP.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::web_config::{ClientAuth, Pem, TlsSettings};

/// The first byte of a TLS record carrying a handshake; a ClientHello starts with it.
const TLS_HANDSHAKE: u8 = 0x16;
/// What Go's HTTPS server (and so every toolkit exporter) answers to plain HTTP.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Why the TLS setup could not be built from its files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Pem { what: String, message: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("client_ca_file: {0}")]
    ClientCa(String),
}

/// Why one connection did not get to HTTP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("plain HTTP sent to the TLS listener; answered 400")]
    PlainHttp,
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificate, key and client CA and builds the server's TLS setup.
pub(crate) fn server_config(settings: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let chain = certificates(&settings.cert, "cert_file")?;
    let key_pem = read(&settings.key, "key_file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: what(&settings.key, "key_file"),
        message: format!("no usable private key ({e})"),
    })?;
    let provider = provider();
    let verifier = client_verifier(settings, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&settings.versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Pem {
                what: what(&settings.key, "key_file"),
                message: "is not the key of the certificate in cert_file".into(),
            },
            e => e.into(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = settings.prefer_server_order;
    Ok(config)
}

fn client_verifier(
    settings: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let verified = |optional: bool| -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
        let Some(ca) = &settings.client_ca else {
            return Err(TlsError::ClientCa("missing".into()));
        };
        let mut roots = RootCertStore::empty();
        for certificate in certificates(ca, "client_ca_file")? {
            roots
                .add(certificate)
                .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        }
        let builder = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))
    };
    Ok(match settings.client_auth {
        ClientAuth::NoClientCert => Arc::new(rustls::server::NoClientAuth),
        ClientAuth::RequestClientCert => Arc::new(AnyClientCert::new(false, provider)),
        ClientAuth::RequireAnyClientCert => Arc::new(AnyClientCert::new(true, provider)),
        ClientAuth::VerifyClientCertIfGiven => verified(true)?,
        ClientAuth::RequireAndVerifyClientCert => verified(false)?,
    })
}

fn what(pem: &Pem, key: &str) -> String {
    match pem {
        Pem::File(path) => format!("{key} {}", path.display()),
        Pem::Inline(_) => key.trim_end_matches("_file").to_owned(),
    }
}

fn read(pem: &Pem, key: &str) -> Result<Vec<u8>, TlsError> {
    pem.read().map_err(|source| TlsError::Read {
        what: what(pem, key),
        source,
    })
}

fn certificates(pem: &Pem, key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(pem, key)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what(pem, key),
            message: format!("not PEM certificates ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            what: what(pem, key),
            message: "no certificate in it".into(),
        });
    }
    Ok(chain)
}

/// Go's `RequireAnyClientCert` and `RequestClientCert`: a client certificate is asked for
/// (and, when `mandatory`, required) but not checked against any CA. The client still
/// proves that it holds the certificate's key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl AnyClientCert {
    fn new(mandatory: bool, provider: &Arc<CryptoProvider>) -> AnyClientCert {
        AnyClientCert {
            mandatory,
            provider: provider.clone(),
        }
    }
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS handshake on an accepted connection, within `limit`. A client that speaks
/// plain HTTP gets Go's 400 answer rather than a TLS alert it cannot read.
pub(crate) async fn handshake(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    limit: Duration,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    let accept = async {
        let mut first = [0u8; 1];
        let mut stream = stream;
        let peeked = stream
            .peek(&mut first)
            .await
            .map_err(HandshakeError::Failed)?;
        if peeked == 1 && first[0] != TLS_HANDSHAKE {
            let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return Err(HandshakeError::PlainHttp);
        }
        TlsAcceptor::from(config)
            .accept(stream)
            .await
            .map_err(HandshakeError::Failed)
    };
    tokio::time::timeout(limit, accept)
        .await
        .map_err(|_| HandshakeError::Timeout(limit))?
}
