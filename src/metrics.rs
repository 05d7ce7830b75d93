//! Every metric the exporter exports, described once: the Prometheus sink, the OTLP sink
//! and the self-metrics registry all take their names and help texts from here.
//!
//! OTLP names follow the OpenTelemetry conventions; with the Collector's Prometheus
//! translation (dots to underscores, units in braces dropped, `s` → `_seconds`) they become
//! exactly the Prometheus names.

/// The Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metric {
    /// The Prometheus name.
    pub name: &'static str,
    /// The OTLP instrument name, for what is exported over OTLP.
    pub otlp: Option<&'static str>,
    /// The OTLP unit (UCUM), for what is exported over OTLP.
    pub unit: Option<&'static str>,
    pub kind: Kind,
    pub help: &'static str,
}

pub(crate) const CONNECTIONS: Metric = Metric {
    name: "websocket_connections",
    otlp: Some("websocket.connections"),
    unit: Some("{connection}"),
    kind: Kind::Gauge,
    help: "Socket.IO sockets connected per namespace, as the app last reported them. \
           Absent while the source is down or stale: absent means unknown, not zero.",
};

pub(crate) const CLIENTS: Metric = Metric {
    name: "websocket_clients",
    otlp: Some("websocket.clients"),
    unit: Some("{client}"),
    kind: Kind::Gauge,
    help: "Engine.IO connections (io.engine.clientsCount), this exporter's own included. \
           One client multiplexes sockets of several namespaces, so this differs from the \
           sum of websocket_connections.",
};

pub(crate) const POLLING_CLIENTS: Metric = Metric {
    name: "socketio_polling_clients",
    otlp: Some("socketio.polling_clients"),
    unit: Some("{client}"),
    kind: Kind::Gauge,
    help: "Engine.IO clients still on HTTP long-polling (not upgraded to WebSocket), as \
           admin-ui's pollingClientsCount last reported them.",
};

pub(crate) const ENGINE_CONNECTIONS: Metric = Metric {
    name: "socketio_engine_connections_total",
    otlp: Some("socketio.engine.connections"),
    unit: Some("{connection}"),
    kind: Kind::Counter,
    help: "Engine.IO connections opened, counted since the exporter first saw the server; \
           leaves with the server when it goes stale.",
};

pub(crate) const ENGINE_DISCONNECTIONS: Metric = Metric {
    name: "socketio_engine_disconnections_total",
    otlp: Some("socketio.engine.disconnections"),
    unit: Some("{disconnection}"),
    kind: Kind::Counter,
    help: "Engine.IO connections closed, by Engine.IO close reason (\"other\" for any reason \
           outside engine.io's own), counted since the exporter first saw the server.",
};

pub(crate) const PACKETS: Metric = Metric {
    name: "socketio_packets_total",
    otlp: Some("socketio.packets"),
    unit: Some("{packet}"),
    kind: Kind::Counter,
    help: "Engine.IO packets with data received (direction=\"in\") and sent (\"out\"), \
           counted since the exporter first saw the server.",
};

pub(crate) const BYTES: Metric = Metric {
    name: "socketio_bytes_total",
    otlp: Some("socketio.bytes"),
    unit: Some("By"),
    kind: Kind::Counter,
    help: "Bytes of Engine.IO packet data received (direction=\"in\") and sent (\"out\"), \
           counted since the exporter first saw the server.",
};

pub(crate) const SOURCE_UP: Metric = Metric {
    name: "socketio_exporter_source_up",
    otlp: Some("socketio_exporter.source.up"),
    // No unit: the Prometheus translation would append `_ratio` for "1".
    unit: None,
    kind: Kind::Gauge,
    help: "1 if the source's counts are current and exported; 0 if they are unknown \
           (unreachable, refused, stale, or not this server).",
};

pub(crate) const SOURCE_LAST_SUCCESS: Metric = Metric {
    name: "socketio_exporter_source_last_success_timestamp_seconds",
    otlp: Some("socketio_exporter.source.last_success_timestamp"),
    unit: Some("s"),
    kind: Kind::Gauge,
    help: "Unix time of the newest report the source delivered for this exporter's scope.",
};

pub(crate) const RECONCILE_DRIFT: Metric = Metric {
    name: "socketio_exporter_reconcile_drift",
    otlp: None,
    unit: None,
    kind: Kind::Gauge,
    help: "Per server and namespace, how far the counts moved by connection events were \
           from the next full report, at the last comparison (0: they agreed).",
};

pub(crate) const RECONCILE_CORRECTIONS: Metric = Metric {
    name: "socketio_exporter_reconcile_corrections_total",
    otlp: None,
    unit: None,
    kind: Kind::Counter,
    help: "Full reports that disagreed with the counts connection events had moved: each \
           corrected drifted event-driven counts.",
};

pub(crate) const NAMESPACES_FOLDED: Metric = Metric {
    name: "socketio_exporter_namespaces_folded",
    otlp: None,
    unit: None,
    kind: Kind::Gauge,
    help: "Namespace values summed into namespace=\"__other__\" because a server reported \
           more than max_namespaces.",
};

pub(crate) const NAMESPACE_LIMIT: Metric = Metric {
    name: "socketio_exporter_namespace_limit",
    otlp: None,
    unit: None,
    kind: Kind::Gauge,
    help: "The max_namespaces cap: namespace values per server before folding into __other__.",
};

pub(crate) const BUILD_INFO: Metric = Metric {
    name: "socketio_exporter_build_info",
    otlp: None,
    unit: None,
    kind: Kind::Gauge,
    help: "Always 1; the labels say which build is running.",
};

pub(crate) const SOURCE_ERRORS: Metric = Metric {
    name: "socketio_exporter_source_errors_total",
    otlp: None,
    unit: None,
    kind: Kind::Counter,
    help: "Failed attempts to read a source, by source and bounded reason.",
};

pub(crate) const SYNC_DURATION: Metric = Metric {
    name: "socketio_exporter_sync_duration_seconds",
    otlp: None,
    unit: None,
    kind: Kind::Histogram,
    help: "Time spent reconciling the sources into one snapshot, per sync tick.",
};

pub(crate) const OTLP_EXPORT_ERRORS: Metric = Metric {
    name: "socketio_exporter_otlp_export_errors_total",
    otlp: None,
    unit: None,
    kind: Kind::Counter,
    help: "OTLP exports that failed (after the exporter's retries); that export's data is \
           dropped.",
};

pub(crate) const CONFIG_LAST_RELOAD_SUCCESSFUL: Metric = Metric {
    name: "socketio_exporter_config_last_reload_successful",
    otlp: None,
    unit: None,
    kind: Kind::Gauge,
    help: "1 if the last configuration reload (or the load at start) succeeded; 0 if it was \
           refused, and the exporter still runs the configuration it had.",
};

pub(crate) const CONFIG_LAST_RELOAD_SUCCESS_TIME: Metric = Metric {
    name: "socketio_exporter_config_last_reload_success_timestamp_seconds",
    otlp: None,
    unit: None,
    kind: Kind::Gauge,
    help: "Unix time of the last successful configuration reload, or of the start.",
};
