//! Real OTLP receivers built from the `opentelemetry-proto` types: a tonic gRPC
//! `MetricsService` and a hyper HTTP/protobuf `/v1/metrics` endpoint, optionally over TLS.
//! Each runs on its own thread and runtime on 127.0.0.1, and records every export.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One export as the receiver got it.
#[derive(Debug, Clone)]
pub struct Export {
    pub request: ExportMetricsServiceRequest,
    /// Lowercase header (or gRPC metadata) names and their values.
    pub headers: BTreeMap<String, String>,
    /// The HTTP request path (gRPC: the method path).
    pub path: String,
    pub received: Instant,
}

/// One data point, flattened.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: String,
    pub unit: String,
    /// `gauge`, `sum` (with `monotonic`/`cumulative` below) or another data kind.
    pub kind: &'static str,
    pub monotonic: bool,
    pub cumulative: bool,
    pub attributes: BTreeMap<String, String>,
    pub value: f64,
}

impl Export {
    /// The attributes of the (single) resource.
    pub fn resource(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for rm in &self.request.resource_metrics {
            if let Some(resource) = &rm.resource {
                out.extend(attributes(&resource.attributes));
            }
        }
        out
    }

    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for rm in &self.request.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let (kind, monotonic, cumulative, points) = match &m.data {
                        Some(metric::Data::Gauge(g)) => ("gauge", false, false, &g.data_points),
                        Some(metric::Data::Sum(s)) => (
                            "sum",
                            s.is_monotonic,
                            s.aggregation_temporality == 2,
                            &s.data_points,
                        ),
                        _ => continue,
                    };
                    for p in points {
                        let value = match p.value {
                            Some(number_data_point::Value::AsInt(v)) => v as f64,
                            Some(number_data_point::Value::AsDouble(v)) => v,
                            None => f64::NAN,
                        };
                        out.push(Point {
                            metric: m.name.clone(),
                            unit: m.unit.clone(),
                            kind,
                            monotonic,
                            cumulative,
                            attributes: attributes(&p.attributes),
                            value,
                        });
                    }
                }
            }
        }
        out
    }

    /// `websocket.connections` per namespace (series without a `server` attribute).
    pub fn connections(&self) -> BTreeMap<String, u64> {
        self.points()
            .into_iter()
            .filter(|p| p.metric == "websocket.connections" && !p.attributes.contains_key("server"))
            .map(|p| (p.attributes["namespace"].clone(), p.value as u64))
            .collect()
    }

    pub fn metric(&self, name: &str) -> Vec<Point> {
        self.points()
            .into_iter()
            .filter(|p| p.metric == name)
            .collect()
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
        .collect()
}

fn any_value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

type Log = Arc<Mutex<Vec<Export>>>;

/// A certificate and key (PEM) for the receiver's TLS.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A private CA that signed a certificate for `localhost` and 127.0.0.1.
pub struct TestCa {
    pub ca_pem: String,
    pub server: ServerTls,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "socketio-exporter test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
        TestCa {
            ca_pem: ca.pem(),
            server: ServerTls {
                cert_pem: server_cert.pem(),
                key_pem: server_key.serialize_pem(),
            },
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

/// A running receiver. Dropping it stops it and frees its port.
pub struct Receiver {
    pub addr: SocketAddr,
    pub transport: Transport,
    log: Log,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Receiver {
    pub fn grpc() -> Receiver {
        Receiver::start(Transport::Grpc, 0, None)
    }

    pub fn http() -> Receiver {
        Receiver::start(Transport::Http, 0, None)
    }

    /// Starts a receiver on `port` (0: an ephemeral one), over TLS when `tls` is given.
    pub fn start(transport: Transport, port: u16, tls: Option<ServerTls>) -> Receiver {
        let log: Log = Arc::default();
        let (stop, stopped) = oneshot::channel();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let sink = log.clone();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
                bound_tx.send(listener.local_addr().unwrap()).unwrap();
                let serve = async move {
                    match transport {
                        Transport::Grpc => serve_grpc(listener, sink, tls).await,
                        Transport::Http => serve_http(listener, sink, tls).await,
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
            // Drops the connection tasks too: the port and every socket are closed.
            runtime.shutdown_timeout(Duration::from_millis(100));
        });
        let addr = bound
            .recv_timeout(Duration::from_secs(5))
            .expect("the receiver did not bind");
        Receiver {
            addr,
            transport,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The base endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/metrics` is appended for HTTP).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn protocol(&self) -> &'static str {
        match self.transport {
            Transport::Grpc => "grpc",
            Transport::Http => "http/protobuf",
        }
    }

    pub fn exports(&self) -> Vec<Export> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Waits for an export, received after the first `after`, that satisfies `check`.
    pub fn wait_for(
        &self,
        after: usize,
        timeout: Duration,
        mut check: impl FnMut(&Export) -> Result<(), String>,
    ) -> Export {
        let deadline = Instant::now() + timeout;
        let mut last = "no export yet".to_owned();
        loop {
            for export in self.exports().into_iter().skip(after) {
                match check(&export) {
                    Ok(()) => return export,
                    Err(why) => last = why,
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no matching export within {timeout:?} ({} received): {last}",
                    self.count()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the receiver: connections are cut and the port is closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[derive(Clone)]
struct GrpcSink(Log);

#[tonic::async_trait]
impl MetricsService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        self.0.lock().unwrap().push(Export {
            request: request.into_inner(),
            headers,
            path: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export".to_owned(),
            received: Instant::now(),
        });
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

async fn serve_grpc(listener: TcpListener, log: Log, tls: Option<ServerTls>) {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(
                tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem),
            ))
            .unwrap();
    }
    server
        .add_service(MetricsServiceServer::new(GrpcSink(log)))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
        .await
        .unwrap();
}

async fn serve_http(listener: TcpListener, log: Log, tls: Option<ServerTls>) {
    let acceptor = tls.map(|tls| {
        let certs = rustls_pem_certs(&tls.cert_pem);
        let key = {
            use rustls::pki_types::pem::PemObject;
            rustls::pki_types::PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).unwrap()
        };
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let log = log.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let log = log.clone();
                async move { Ok::<_, Infallible>(handle_http(req, &log).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

fn rustls_pem_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn handle_http(req: Request<hyper::body::Incoming>, log: &Log) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    if req.method() != hyper::Method::POST || path != "/v1/metrics" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let request = ExportMetricsServiceRequest::decode(body).expect("a protobuf export request");
    log.lock().unwrap().push(Export {
        request,
        headers,
        path,
        received: Instant::now(),
    });
    let answer = ExportMetricsServiceResponse {
        partial_success: None,
    }
    .encode_to_vec();
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-protobuf"),
    );
    response
}
