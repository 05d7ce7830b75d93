//! Engine.IO counters: summed per server from each message's events exactly once, kept
//! across reconnects of the source, forgotten when the server goes stale.

use tokio::time::Instant;

use crate::snapshot::{DISCONNECT_REASONS, EngineCounters};
use crate::update::EngineEvents;

/// One server's Engine.IO counters since this source first saw it.
#[derive(Debug, Clone)]
pub struct EngineTotals {
    pub counters: EngineCounters,
    /// When the newest events were counted: the totals leave when this is stale.
    pub at: Instant,
}

/// The events of one message as counters, each close reason folded into the fixed set.
pub(super) fn counters(events: &EngineEvents) -> EngineCounters {
    let mut counters = EngineCounters {
        connections: events.connections,
        packets_in: events.packets_in,
        packets_out: events.packets_out,
        bytes_in: events.bytes_in,
        bytes_out: events.bytes_out,
        ..EngineCounters::default()
    };
    for (reason, n) in &events.disconnections {
        let slot = &mut counters.disconnections[reason_index(reason)];
        *slot = slot.saturating_add(*n);
    }
    counters
}

/// The index of `reason` in [`DISCONNECT_REASONS`]; `other` for a reason outside it.
fn reason_index(reason: &str) -> usize {
    let known = &DISCONNECT_REASONS[..DISCONNECT_REASONS.len() - 1];
    known
        .iter()
        .position(|&r| r == reason)
        .unwrap_or(known.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reasons_fold_into_other() {
        let events = EngineEvents {
            connections: 3,
            disconnections: vec![
                ("ping timeout".into(), 2),
                ("forced close".into(), 1),
                ("ping timeout".into(), 1),
                ("client namespace disconnect".into(), 4),
                (String::new(), 1),
            ],
            ..EngineEvents::default()
        };
        let counters = counters(&events);
        assert_eq!(counters.connections, 3);
        let by_reason: Vec<_> = counters.disconnections().collect();
        assert_eq!(
            by_reason,
            [
                ("transport close", 0),
                ("transport error", 0),
                ("ping timeout", 3),
                ("forced close", 1),
                ("parse error", 0),
                ("other", 5),
            ]
        );
    }
}
