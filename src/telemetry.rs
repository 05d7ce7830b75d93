//! The exporter's own metrics that are not part of the snapshot (counters, the sync
//! histogram, process metrics), and the rate limit that keeps repeated errors quiet.

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use tokio::time::Instant;

use crate::sources::Reason;

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
        let source_errors = IntCounterVec::new(
            Opts::new(
                "socketio_exporter_source_errors_total",
                "Failed attempts to read a source, by source and bounded reason.",
            ),
            &["source", "reason"],
        )
        .expect("valid metric definition");
        let sync_duration = Histogram::with_opts(
            HistogramOpts::new(
                "socketio_exporter_sync_duration_seconds",
                "Time spent reconciling the sources into one snapshot, per sync tick.",
            )
            .buckets(vec![
                0.000_01, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
            ]),
        )
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
        let counter = IntCounter::new(
            "socketio_exporter_otlp_export_errors_total",
            "OTLP exports that failed (after the exporter's retries); that export's data is dropped.",
        )
        .expect("valid metric definition");
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

/// Decides which of a stream of repeated failures are worth a log line: the first of each
/// kind `K`, then one reminder per `every` with the number left unsaid.
#[derive(Debug)]
pub struct ErrorLog<K = Reason> {
    every: Duration,
    last: Option<(K, Instant)>,
    suppressed: u64,
}

/// What to log for a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new kind of failure: log it in full.
    First,
    /// Still failing the same way: log a reminder with how many were not logged.
    Reminder { suppressed: u64 },
    /// Say nothing.
    Quiet,
}

impl<K: Copy + PartialEq> ErrorLog<K> {
    pub fn new(every: Duration) -> ErrorLog<K> {
        ErrorLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    pub fn failure(&mut self, reason: K, now: Instant) -> Verdict {
        match self.last {
            Some((last, at)) if last == reason => {
                if now.saturating_duration_since(at) >= self.every {
                    let suppressed = std::mem::take(&mut self.suppressed);
                    self.last = Some((reason, now));
                    Verdict::Reminder { suppressed }
                } else {
                    self.suppressed += 1;
                    Verdict::Quiet
                }
            }
            _ => {
                self.last = Some((reason, now));
                self.suppressed = 0;
                Verdict::First
            }
        }
    }

    /// Success: the next failure is news again. Returns whether a failure was being reported.
    pub fn recovered(&mut self) -> bool {
        self.suppressed = 0;
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn repeated_failures_log_once_then_remind() {
        let every = Duration::from_secs(300);
        let mut log = ErrorLog::new(every);
        let t0 = Instant::now();
        assert_eq!(log.failure(Reason::Auth, t0), Verdict::First);
        for i in 1..=10 {
            assert_eq!(
                log.failure(Reason::Auth, t0 + Duration::from_secs(i)),
                Verdict::Quiet
            );
        }
        assert_eq!(
            log.failure(Reason::Auth, t0 + every),
            Verdict::Reminder { suppressed: 10 }
        );
        assert_eq!(
            log.failure(Reason::Connect, t0 + every),
            Verdict::First,
            "a different failure is news"
        );
        assert!(log.recovered());
        assert_eq!(log.failure(Reason::Connect, t0 + every), Verdict::First);
    }

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
