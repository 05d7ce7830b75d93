//! The exporter's own metrics that are not part of the snapshot: the error counters, the
//! sync histogram, the config reload gauges and the process metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::metrics::{
    CONFIG_LAST_RELOAD_SUCCESS_TIME, CONFIG_LAST_RELOAD_SUCCESSFUL, Metric, OTLP_EXPORT_ERRORS,
    SOURCE_ERRORS, SYNC_DURATION,
};
use crate::update::Reason;

pub struct Telemetry {
    registry: Registry,
    source_errors: IntCounterVec,
    /// The configured sources and their reasons: only their error counters exist, so a
    /// source a reload removed cannot bring its label sets back.
    sources: Mutex<BTreeMap<String, &'static [Reason]>>,
    sync_duration: Histogram,
    /// Present while OTLP export is on.
    otlp_export_errors: Mutex<Option<IntCounter>>,
    reload_successful: IntGauge,
    reload_success_time: Gauge,
    /// Bumped by every change but the process metrics and the sync histogram (which
    /// change with each snapshot anyway), so a cached `/metrics` body knows it is behind.
    changes: AtomicU64,
}

impl Telemetry {
    /// Registers the self-metrics. Every source's counters, with each reason its type can
    /// report, start at 0 so that `rate()` and `increase()` see the first error.
    pub fn new<'a>(sources: impl IntoIterator<Item = (&'a str, &'static [Reason])>) -> Telemetry {
        let registry = Registry::new();
        let source_errors = IntCounterVec::new(opts(&SOURCE_ERRORS), &["source", "reason"])
            .expect("valid metric definition");
        let sync_duration =
            Histogram::with_opts(HistogramOpts::from(opts(&SYNC_DURATION)).buckets(vec![
                0.000_01, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]))
            .expect("valid metric definition");
        registry
            .register(Box::new(source_errors.clone()))
            .expect("registered once");
        registry
            .register(Box::new(sync_duration.clone()))
            .expect("registered once");
        let reload_successful = IntGauge::with_opts(opts(&CONFIG_LAST_RELOAD_SUCCESSFUL))
            .expect("valid metric definition");
        let reload_success_time = Gauge::with_opts(opts(&CONFIG_LAST_RELOAD_SUCCESS_TIME))
            .expect("valid metric definition");
        for gauge in [
            Box::new(reload_successful.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reload_success_time.clone()),
        ] {
            registry.register(gauge).expect("registered once");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");

        let telemetry = Telemetry {
            registry,
            source_errors,
            sources: Mutex::default(),
            sync_duration,
            otlp_export_errors: Mutex::default(),
            reload_successful,
            reload_success_time,
            changes: AtomicU64::new(0),
        };
        telemetry.set_sources(sources);
        // The load at start counts as the first successful reload, as in Prometheus.
        telemetry.config_loaded(true);
        telemetry
    }

    /// Adds `socketio_exporter_otlp_export_errors_total`, at 0, for an exporter with OTLP on.
    pub fn with_otlp(self) -> Telemetry {
        self.set_otlp(true);
        self
    }

    /// Registers `socketio_exporter_otlp_export_errors_total` (from 0) while OTLP export
    /// is on, and removes it when a reload turns OTLP off.
    pub fn set_otlp(&self, on: bool) {
        let mut slot = self
            .otlp_export_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (on, slot.take()) {
            (true, None) => {
                let counter = IntCounter::with_opts(opts(&OTLP_EXPORT_ERRORS))
                    .expect("valid metric definition");
                self.registry
                    .register(Box::new(counter.clone()))
                    .expect("registered once");
                *slot = Some(counter);
            }
            (false, Some(counter)) => {
                let _ = self.registry.unregister(Box::new(counter));
            }
            (_, kept) => *slot = kept,
        }
    }

    pub fn otlp_export_error(&self) {
        if let Some(counter) = &*self
            .otlp_export_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            counter.inc();
            self.changed();
        }
    }

    /// The configured sources: each one's counters, with each reason its type can report,
    /// start at 0 so that `rate()` and `increase()` see the first error; the counters of
    /// sources no longer configured (and of reasons a source's new type lacks) leave.
    pub fn set_sources<'a>(&self, sources: impl IntoIterator<Item = (&'a str, &'static [Reason])>) {
        let mut known = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let next: BTreeMap<String, &'static [Reason]> = sources
            .into_iter()
            .map(|(name, reasons)| (name.to_owned(), reasons))
            .collect();
        for (name, reasons) in known.iter() {
            for reason in *reasons {
                if !next.get(name).is_some_and(|r| r.contains(reason)) {
                    let _ = self
                        .source_errors
                        .remove_label_values(&[name, reason.as_str()]);
                }
            }
        }
        for (name, reasons) in &next {
            for reason in *reasons {
                self.source_errors
                    .with_label_values(&[name, reason.as_str()]);
            }
        }
        *known = next;
        self.changed();
    }

    /// Counts a failure of a configured source; one a reload removed is not counted.
    pub fn source_error(&self, source: &str, reason: Reason) {
        let known = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains_key(source) {
            self.source_errors
                .with_label_values(&[source, reason.as_str()])
                .inc();
            self.changed();
        }
    }

    /// Records the outcome of a config load or reload.
    pub fn config_loaded(&self, ok: bool) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            self.reload_success_time.set(now.as_secs_f64());
        }
        self.changed();
    }

    /// How many times the counted metrics changed: a body rendered at one count is
    /// current while the count stays.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_sync(&self, took: Duration) {
        self.sync_duration.observe(took.as_secs_f64());
    }

    /// Appends these metrics in the text exposition format.
    pub fn encode(&self, out: &mut String) {
        // Encoding into a String cannot fail for well-formed families.
        let _ = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), out);
    }
}

fn opts(metric: &Metric) -> Opts {
    Opts::new(metric.name, metric.help)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_error_counter_only_with_otlp() {
        let mut text = String::new();
        Telemetry::new([]).encode(&mut text);
        assert!(!text.contains("otlp"), "{text}");
        let telemetry = Telemetry::new([]).with_otlp();
        telemetry.otlp_export_error();
        text.clear();
        telemetry.encode(&mut text);
        assert!(
            text.contains("\nsocketio_exporter_otlp_export_errors_total 1\n"),
            "{text}"
        );
    }

    #[test]
    fn every_reason_starts_at_zero() {
        const REASONS: &[Reason] = &[Reason::Auth, Reason::Closed];
        let reasons = REASONS;
        let telemetry = Telemetry::new([("a", REASONS)]);
        let mut text = String::new();
        telemetry.encode(&mut text);
        for reason in reasons {
            let line = format!(
                "socketio_exporter_source_errors_total{{reason=\"{}\",source=\"a\"}} 0",
                reason.as_str()
            );
            assert!(text.contains(&line), "missing {line}\n{text}");
        }
    }

    #[test]
    fn a_removed_source_leaves_and_a_late_error_does_not_bring_it_back() {
        const A: &[Reason] = &[Reason::Auth, Reason::Closed];
        const B: &[Reason] = &[Reason::Missing];
        let telemetry = Telemetry::new([("a", A), ("b", B)]);
        telemetry.source_error("a", Reason::Auth);
        // A reload removes b and turns a into a type without the auth reason.
        telemetry.set_sources([("a", B)]);
        telemetry.source_error("b", Reason::Missing);
        let mut text = String::new();
        telemetry.encode(&mut text);
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("socketio_exporter_source_errors_total{"))
            .collect();
        assert_eq!(
            errors,
            ["socketio_exporter_source_errors_total{reason=\"missing\",source=\"a\"} 0"]
        );
    }

    #[test]
    fn a_refused_reload_keeps_the_last_success_time() {
        let telemetry = Telemetry::new([]);
        let mut text = String::new();
        telemetry.encode(&mut text);
        assert!(
            text.contains("\nsocketio_exporter_config_last_reload_successful 1\n"),
            "{text}"
        );
        let started = telemetry.reload_success_time.get();
        assert!(started > 1e9, "unix time at start: {started}");
        telemetry.config_loaded(false);
        assert_eq!(telemetry.reload_successful.get(), 0);
        assert_eq!(telemetry.reload_success_time.get(), started);
    }
}
