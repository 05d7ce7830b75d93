//! `[sync]`: the period of the sync loop and when counts go stale.

use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;

const DEFAULT_INTERVAL_SECS: f64 = 2.0;
const DEFAULT_STALE_AFTER_SECS: f64 = 10.0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    /// Period of the sync loop.
    interval_secs: Option<f64>,
    /// Counts older than this no longer count.
    stale_after_secs: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncConfig {
    /// Period of the sync loop.
    pub interval: Duration,
    /// A server's counts older than this no longer count.
    pub stale_after: Duration,
}

impl RawSync {
    pub(crate) fn validate(self, problems: &mut Problems) -> SyncConfig {
        let interval = problems.seconds(
            "sync.interval_secs",
            self.interval_secs,
            DEFAULT_INTERVAL_SECS,
        );
        let stale_after = problems.seconds(
            "sync.stale_after_secs",
            self.stale_after_secs,
            DEFAULT_STALE_AFTER_SECS,
        );
        if stale_after <= interval {
            problems.add(
                "sync.stale_after_secs",
                format!(
                    "must be longer than sync.interval_secs ({}s), got {}s",
                    interval.as_secs_f64(),
                    stale_after.as_secs_f64()
                ),
            );
        }
        SyncConfig {
            interval,
            stale_after,
        }
    }
}
