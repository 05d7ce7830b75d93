//! OTLP export of the snapshot, over gRPC or HTTP/protobuf, every `interval`.
//!
//! The instruments are asynchronous: at each export the SDK calls their callbacks, which
//! read the latest published snapshot. A series that is not in the snapshot is not
//! observed, so it is not exported: a namespace that leaves the snapshot leaves the next
//! export, with no expiry code (a synchronous gauge would export its last value forever).
//!
//! The SDK's `PeriodicReader` runs collection and export on its own thread, outside any
//! Tokio runtime. The network IO of both transports runs on the exporter's runtime: the
//! gRPC channel's worker task, and each HTTP request ([`RuntimeClient`]). So the sink is
//! started inside the runtime and shut down from a blocking task, never from the runtime's
//! own thread, which must keep running for the final export.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::{
    Meter, MeterProvider as _, ObservableCounter, ObservableGauge, ObservableUpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use opentelemetry_otlp::{
    ExporterBuildError, MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{
    Instrument, PeriodicReader, SdkMeterProvider, Stream, Temporality,
};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::otlp::{OtlpConfig, OtlpProtocol};
use crate::log_limit::{ErrorLog, Fields};
use crate::metrics::{
    BYTES, CLIENTS, CONNECTIONS, ENGINE_CONNECTIONS, ENGINE_DISCONNECTIONS, Metric, PACKETS,
    POLLING_CLIENTS, SOURCE_LAST_SUCCESS, SOURCE_UP,
};
use crate::snapshot::{EngineCounters, Snapshot};
use crate::telemetry::Telemetry;

/// The SDK's default limit of series per instrument; more fold into one overflow point.
const DEFAULT_SERIES_LIMIT: usize = 2000;

const SCOPE: &str = "socketio-exporter";
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub(crate) enum OtlpError {
    #[error("otlp exporter: {0}")]
    Build(#[from] ExporterBuildError),
    #[error("otlp ca file {}: {reason}", path.display())]
    CaFile {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("otlp http client: {0}")]
    HttpClient(String),
}

/// The running OTLP export. Shut it down with [`OtlpSink::shutdown`] for the final export.
pub(crate) struct OtlpSink {
    provider: Option<SdkMeterProvider>,
    // The SDK keeps callbacks registered without these handles; holding them says so.
    _connections: ObservableUpDownCounter<i64>,
    _clients: ObservableUpDownCounter<i64>,
    _source_up: ObservableGauge<u64>,
    _source_last_success: ObservableGauge<f64>,
    _engine: EngineInstruments,
}

impl OtlpSink {
    /// Starts exporting every `config.interval`. Call it inside the Tokio runtime: the gRPC
    /// channel spawns its worker there. `series_limit` is the most connection series one
    /// export carries (the SDK folds the rest into one `otel.metric.overflow` point).
    pub(crate) fn start(
        config: &OtlpConfig,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        telemetry: Arc<Telemetry>,
        series_limit: usize,
    ) -> Result<OtlpSink, OtlpError> {
        let ca = match &config.ca_file {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        let exporter = match config.protocol {
            OtlpProtocol::Grpc => grpc_exporter(config, ca)?,
            OtlpProtocol::HttpProtobuf => http_exporter(config, ca)?,
        };
        let exporter = Counted {
            inner: exporter,
            telemetry,
            log: Mutex::new(ErrorLog::default()),
        };
        let reader = PeriodicReader::builder(exporter)
            .with_interval(config.interval)
            .build();
        let resource = Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(
                config
                    .resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let series_limit = series_limit.max(DEFAULT_SERIES_LIMIT);
        let connections_name = otlp_name(&CONNECTIONS);
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .with_view(move |instrument: &Instrument| {
                (instrument.name() == connections_name)
                    .then(|| {
                        Stream::builder()
                            .with_cardinality_limit(series_limit)
                            .build()
                            .ok()
                    })
                    .flatten()
            })
            .build();
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder(SCOPE)
                .with_version(VERSION)
                .build(),
        );
        Ok(OtlpSink {
            provider: Some(provider),
            _connections: connections(&meter, snapshot.clone()),
            _clients: clients(&meter, snapshot.clone()),
            _source_up: source_up(&meter, snapshot.clone()),
            _source_last_success: source_last_success(&meter, snapshot.clone()),
            _engine: EngineInstruments::new(&meter, snapshot),
        })
    }

    /// Makes the final export and stops, waiting at most `within`. The SDK's shutdown
    /// blocks (and would deadlock on this single-threaded runtime, which the gRPC channel
    /// needs), so it runs on a blocking thread.
    pub(crate) async fn shutdown(mut self, within: Duration) {
        let Some(provider) = self.provider.take() else {
            return;
        };
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(within, shutdown).await {
            Ok(Ok(Ok(()))) => tracing::info!("otlp: final export done"),
            Ok(Ok(Err(e))) => tracing::warn!("otlp: final export failed: {e}"),
            Ok(Err(e)) => tracing::warn!("otlp: shutdown task failed: {e}"),
            Err(_) => tracing::warn!("otlp: final export did not finish within {within:?}"),
        }
    }
}

impl Drop for OtlpSink {
    /// Without [`OtlpSink::shutdown`] (an error path), the provider's own shutdown-on-drop
    /// must not block the runtime thread: it runs on a thread of its own.
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::Builder::new()
                .name("otlp-shutdown".into())
                .spawn(move || drop(provider));
        }
    }
}

fn otlp_name(metric: &Metric) -> &'static str {
    metric
        .otlp
        .expect("a metric exported over OTLP has an OTLP name")
}

// Connections and clients are additive (a sum over namespaces or servers means something),
// so they are asynchronous UpDownCounters, as the semantic conventions'
// `*.active_connections` are: a non-monotonic cumulative sum, which Prometheus receives as
// a gauge. Since SDK 0.32 an attribute set the callback does not observe is dropped from
// the next export, as it is for gauges.

fn connections(meter: &Meter, rx: watch::Receiver<Arc<Snapshot>>) -> ObservableUpDownCounter<i64> {
    meter
        .i64_observable_up_down_counter(otlp_name(&CONNECTIONS))
        .with_unit(CONNECTIONS.unit.unwrap_or_default())
        .with_description(CONNECTIONS.help)
        .with_callback(move |observer| {
            let snapshot = rx.borrow().as_of(Instant::now());
            for c in &snapshot.connections {
                let mut attributes = vec![
                    KeyValue::new("environment", snapshot.environment.clone()),
                    KeyValue::new("namespace", c.namespace.clone()),
                ];
                if let Some(server) = &c.server {
                    attributes.push(KeyValue::new("server", server.clone()));
                }
                observer.observe(count(c.sockets), &attributes);
            }
        })
        .build()
}

fn clients(meter: &Meter, rx: watch::Receiver<Arc<Snapshot>>) -> ObservableUpDownCounter<i64> {
    meter
        .i64_observable_up_down_counter(otlp_name(&CLIENTS))
        .with_unit(CLIENTS.unit.unwrap_or_default())
        .with_description(CLIENTS.help)
        .with_callback(move |observer| {
            let snapshot = rx.borrow().as_of(Instant::now());
            for c in &snapshot.clients {
                let mut attributes =
                    vec![KeyValue::new("environment", snapshot.environment.clone())];
                if let Some(server) = &c.server {
                    attributes.push(KeyValue::new("server", server.clone()));
                }
                observer.observe(count(c.clients), &attributes);
            }
        })
        .build()
}

/// The Engine.IO instruments: polling clients are additive like clients (an
/// UpDownCounter, a gauge in Prometheus); the event counts are monotonic cumulative sums of
/// what the exporter counted since it first saw each server.
struct EngineInstruments {
    _polling_clients: ObservableUpDownCounter<i64>,
    _counters: [ObservableCounter<u64>; 4],
}

/// One engine counter's points for one server: `(extra attribute, value)`.
type Points = fn(&EngineCounters) -> Vec<(Option<KeyValue>, u64)>;

impl EngineInstruments {
    fn new(meter: &Meter, rx: watch::Receiver<Arc<Snapshot>>) -> EngineInstruments {
        EngineInstruments {
            _polling_clients: polling_clients(meter, rx.clone()),
            _counters: [
                engine_counter(meter, rx.clone(), &ENGINE_CONNECTIONS, |c| {
                    vec![(None, c.connections)]
                }),
                engine_counter(meter, rx.clone(), &ENGINE_DISCONNECTIONS, |c| {
                    c.disconnections()
                        .map(|(reason, n)| (Some(KeyValue::new("reason", reason)), n))
                        .collect()
                }),
                engine_counter(meter, rx.clone(), &PACKETS, |c| {
                    vec![
                        direction("in", c.packets_in),
                        direction("out", c.packets_out),
                    ]
                }),
                engine_counter(meter, rx, &BYTES, |c| {
                    vec![direction("in", c.bytes_in), direction("out", c.bytes_out)]
                }),
            ],
        }
    }
}

fn direction(direction: &'static str, n: u64) -> (Option<KeyValue>, u64) {
    (Some(KeyValue::new("direction", direction)), n)
}

/// `environment`, and `server` in cluster scope.
fn server_attributes(snapshot: &Snapshot, server: Option<&str>) -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new("environment", snapshot.environment.clone())];
    if let Some(server) = server {
        attributes.push(KeyValue::new("server", server.to_owned()));
    }
    attributes
}

fn polling_clients(
    meter: &Meter,
    rx: watch::Receiver<Arc<Snapshot>>,
) -> ObservableUpDownCounter<i64> {
    meter
        .i64_observable_up_down_counter(otlp_name(&POLLING_CLIENTS))
        .with_unit(POLLING_CLIENTS.unit.unwrap_or_default())
        .with_description(POLLING_CLIENTS.help)
        .with_callback(move |observer| {
            let snapshot = rx.borrow().as_of(Instant::now());
            for e in &snapshot.engine {
                if let Some(n) = e.polling_clients {
                    observer.observe(count(n), &server_attributes(&snapshot, e.server.as_deref()));
                }
            }
        })
        .build()
}

fn engine_counter(
    meter: &Meter,
    rx: watch::Receiver<Arc<Snapshot>>,
    metric: &'static Metric,
    points: Points,
) -> ObservableCounter<u64> {
    meter
        .u64_observable_counter(otlp_name(metric))
        .with_unit(metric.unit.unwrap_or_default())
        .with_description(metric.help)
        .with_callback(move |observer| {
            let snapshot = rx.borrow().as_of(Instant::now());
            for e in &snapshot.engine {
                let Some(counters) = &e.counters else {
                    continue;
                };
                for (extra, n) in points(counters) {
                    let mut attributes = server_attributes(&snapshot, e.server.as_deref());
                    attributes.extend(extra);
                    observer.observe(n, &attributes);
                }
            }
        })
        .build()
}

// Health is a state, not an amount: summing it over sources means nothing, so these are
// gauges.

fn source_up(meter: &Meter, rx: watch::Receiver<Arc<Snapshot>>) -> ObservableGauge<u64> {
    meter
        .u64_observable_gauge(otlp_name(&SOURCE_UP))
        .with_description(SOURCE_UP.help)
        .with_callback(move |observer| {
            let snapshot = rx.borrow().as_of(Instant::now());
            for s in &snapshot.sources {
                observer.observe(
                    u64::from(s.health.is_up()),
                    &[KeyValue::new("source", s.name.clone())],
                );
            }
        })
        .build()
}

fn source_last_success(meter: &Meter, rx: watch::Receiver<Arc<Snapshot>>) -> ObservableGauge<f64> {
    meter
        .f64_observable_gauge(otlp_name(&SOURCE_LAST_SUCCESS))
        .with_unit(SOURCE_LAST_SUCCESS.unit.unwrap_or_default())
        .with_description(SOURCE_LAST_SUCCESS.help)
        .with_callback(move |observer| {
            let snapshot = rx.borrow().as_of(Instant::now());
            for s in &snapshot.sources {
                if let Some(secs) = s.last_success_unix_secs() {
                    observer.observe(secs, &[KeyValue::new("source", s.name.clone())]);
                }
            }
        })
        .build()
}

fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn read_ca(path: &Path) -> Result<Vec<u8>, OtlpError> {
    std::fs::read(path).map_err(|e| OtlpError::CaFile {
        path: path.to_owned(),
        reason: e.kind().to_string(),
    })
}

fn header_map(config: &OtlpConfig) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    for header in &config.headers {
        // Validated with the configuration.
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(header.name.as_bytes()),
            reqwest::header::HeaderValue::from_str(&header.value),
        ) {
            headers.insert(name, value);
        }
    }
    headers
}

fn grpc_exporter(config: &OtlpConfig, ca: Option<Vec<u8>>) -> Result<MetricExporter, OtlpError> {
    let mut builder = MetricExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.as_str())
        .with_timeout(config.timeout)
        .with_metadata(MetadataMap::from_headers(header_map(config)))
        .with_temporality(Temporality::Cumulative);
    if config.endpoint.scheme() == "https" {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(pem) = ca {
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        builder = builder.with_tls_config(tls);
    }
    Ok(builder.build()?)
}

fn http_exporter(config: &OtlpConfig, ca: Option<Vec<u8>>) -> Result<MetricExporter, OtlpError> {
    let mut client = reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca {
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| OtlpError::CaFile {
                path: config.ca_file.clone().unwrap_or_default(),
                reason: e.to_string(),
            })?;
        for certificate in certificates {
            client = client.add_root_certificate(certificate);
        }
    }
    let client = RuntimeClient {
        client: client
            .build()
            .map_err(|e| OtlpError::HttpClient(e.to_string()))?,
        runtime: tokio::runtime::Handle::current(),
    };
    let headers: HashMap<String, String> = config
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    Ok(MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.as_str())
        .with_timeout(config.timeout)
        .with_headers(headers)
        .with_http_client(client)
        .with_temporality(Temporality::Cumulative)
        .build()?)
}

/// The largest collector response read; an OTLP response is a few bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The HTTP client of the OTLP HTTP transport. The SDK calls it from its export thread,
/// where no Tokio runtime runs (an async reqwest client called there panics: "there is no
/// reactor running"); each request runs as a task on the exporter's own runtime instead,
/// which spares the blocking client's extra thread and runtime.
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<bytes::Bytes>,
    ) -> Result<opentelemetry_http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let mut response = client.execute(request.try_into()?).await?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(Box::new(opentelemetry_http::ResponseBodyTooLarge::new())
                        as opentelemetry_http::HttpError);
                }
                body.extend_from_slice(&chunk);
            }
            let mut answer = opentelemetry_http::Response::builder()
                .status(status)
                .body(bytes::Bytes::from(body))?;
            *answer.headers_mut() = headers;
            Ok(answer)
        });
        task.await?
    }
}

/// What kind of failure an export had, for the log rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Timeout,
    Failed,
}

/// The exporter, counting failed exports in `socketio_exporter_otlp_export_errors_total`
/// and logging them once, then once per [`crate::log_limit::REMIND_EVERY`]. A failed
/// export's data is not kept: the next export carries the then-current counts, so memory
/// stays flat however long the collector is away.
struct Counted<E> {
    inner: E,
    telemetry: Arc<Telemetry>,
    log: Mutex<ErrorLog<Failure>>,
}

impl<E> Counted<E> {
    fn record(&self, result: &OTelSdkResult) {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        let error = match result {
            Ok(()) => {
                if log.recovered() {
                    tracing::info!("otlp: exports succeed again");
                }
                return;
            }
            Err(error) => error,
        };
        self.telemetry.otlp_export_error();
        let kind = match error {
            OTelSdkError::Timeout(_) => Failure::Timeout,
            _ => Failure::Failed,
        };
        let message = format!("otlp: export failed: {error}");
        log.failure(kind, Instant::now())
            .log(Fields::default(), &message);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.record(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
