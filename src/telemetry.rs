//! The exporter's own metrics that are not part of the snapshot: the error counters, the
//! sync histogram and the process metrics.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use crate::metrics::{Metric, OTLP_EXPORT_ERRORS, SOURCE_ERRORS, SYNC_DURATION};
use crate::update::Reason;

pub struct Telemetry {
    registry: Registry,
    source_errors: IntCounterVec,
    sync_duration: Histogram,
    /// Present when OTLP export is on.
    otlp_export_errors: Option<IntCounter>,
}

impl Telemetry {
    /// Registers the self-metrics. Every source's counters, with each reason its type can
    /// report, start at 0 so that `rate()` and `increase()` see the first error.
    pub fn new<'a>(sources: impl IntoIterator<Item = (&'a str, &'a [Reason])>) -> Telemetry {
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
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("registered once");

        for (source, reasons) in sources {
            for reason in reasons {
                source_errors.with_label_values(&[source, reason.as_str()]);
            }
        }
        Telemetry {
            registry,
            source_errors,
            sync_duration,
            otlp_export_errors: None,
        }
    }

    /// Adds `socketio_exporter_otlp_export_errors_total`, at 0, for an exporter with OTLP on.
    pub fn with_otlp(mut self) -> Telemetry {
        let counter =
            IntCounter::with_opts(opts(&OTLP_EXPORT_ERRORS)).expect("valid metric definition");
        self.registry
            .register(Box::new(counter.clone()))
            .expect("registered once");
        self.otlp_export_errors = Some(counter);
        self
    }

    pub fn otlp_export_error(&self) {
        if let Some(counter) = &self.otlp_export_errors {
            counter.inc();
        }
    }

    pub fn source_error(&self, source: &str, reason: Reason) {
        self.source_errors
            .with_label_values(&[source, reason.as_str()])
            .inc();
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
        let reasons = [Reason::Auth, Reason::Closed];
        let telemetry = Telemetry::new([("a", &reasons[..])]);
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
}
