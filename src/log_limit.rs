//! Keeps repeated failures quiet: the first of a kind is logged in full, then one reminder
//! per [`REMIND_EVERY`] with the number of lines left unsaid.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// How often a failure that keeps repeating is logged again.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(300);

/// Decides which of a stream of repeated failures are worth a log line: the first of each
/// kind `K`, then one reminder per `every`.
#[derive(Debug)]
pub(crate) struct ErrorLog<K> {
    every: Duration,
    last: Option<(K, Instant)>,
    suppressed: u64,
}

/// What to log for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A new kind of failure: log it in full.
    First,
    /// Still failing the same way: log a reminder with how many were not logged.
    Reminder { suppressed: u64 },
    /// Say nothing above debug level.
    Quiet,
}

impl<K: Copy + PartialEq> Default for ErrorLog<K> {
    fn default() -> Self {
        ErrorLog::new(REMIND_EVERY)
    }
}

impl<K: Copy + PartialEq> ErrorLog<K> {
    pub(crate) fn new(every: Duration) -> ErrorLog<K> {
        ErrorLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    pub(crate) fn failure(&mut self, kind: K, now: Instant) -> Verdict {
        match self.last {
            Some((last, at)) if last == kind => {
                if now.saturating_duration_since(at) >= self.every {
                    let suppressed = std::mem::take(&mut self.suppressed);
                    self.last = Some((kind, now));
                    Verdict::Reminder { suppressed }
                } else {
                    self.suppressed += 1;
                    Verdict::Quiet
                }
            }
            _ => {
                self.last = Some((kind, now));
                self.suppressed = 0;
                Verdict::First
            }
        }
    }

    /// Success: the next failure is news again. Returns whether a failure was being reported.
    pub(crate) fn recovered(&mut self) -> bool {
        self.suppressed = 0;
        self.last.take().is_some()
    }
}

/// The fields of a failure's log line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields<'a> {
    /// The source that failed, if a source did.
    pub source: Option<&'a str>,
    /// Its bounded reason.
    pub reason: Option<&'a str>,
    /// What it failed to reach: a URL, a file or a directory.
    pub endpoint: Option<&'a str>,
    /// When the next attempt is.
    pub retry_in: Option<Duration>,
}

impl Verdict {
    /// Logs a failure as this verdict says: a warning the first time, a reminder with the
    /// count of lines left unsaid, or a debug line.
    pub(crate) fn log(self, fields: Fields<'_>, message: &dyn fmt::Display) {
        let Fields {
            source,
            reason,
            endpoint,
            retry_in,
        } = fields;
        let retry_in = retry_in.map(tracing::field::debug);
        match self {
            Verdict::First => tracing::warn!(source, reason, endpoint, retry_in, "{message}"),
            Verdict::Reminder { suppressed } => tracing::warn!(
                source,
                reason,
                endpoint,
                retry_in,
                repeated = suppressed,
                "still failing: {message}"
            ),
            Verdict::Quiet => tracing::debug!(source, reason, endpoint, retry_in, "{message}"),
        }
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
        assert_eq!(log.failure("auth", t0), Verdict::First);
        for i in 1..=10 {
            assert_eq!(
                log.failure("auth", t0 + Duration::from_secs(i)),
                Verdict::Quiet
            );
        }
        assert_eq!(
            log.failure("auth", t0 + every),
            Verdict::Reminder { suppressed: 10 }
        );
        assert_eq!(
            log.failure("connect", t0 + every),
            Verdict::First,
            "a different failure is news"
        );
        assert!(log.recovered());
        assert_eq!(log.failure("connect", t0 + every), Verdict::First);
    }
}
