//! The health of a connected source that has no fresh counts in its scope: still waiting,
//! listening for pushes, reporting only foreign servers, or down.

use std::time::Duration;

use tokio::time::Instant;

use super::SourceInput;
use crate::snapshot::Health;
use crate::sources::Scope;
use crate::update::{Reason, Silence};

/// How many foreign server ids a `server_id_not_seen` warning lists.
const SEEN_IDS_SHOWN: usize = 10;

/// A source connected `since`, without fresh counts of its own scope at `now`.
pub(super) fn without_counts(
    source: &SourceInput,
    since: Instant,
    now: Instant,
    stale_after: Duration,
) -> Health {
    // Quiet is not unknown: a push source that never carried reports has none to lose, and
    // the events it carries move other sources' reports.
    let reason = match source.silence {
        Silence::Listens if !source.carried_reports => return Health::Up,
        Silence::Listens => Reason::Stale,
        Silence::Stale(reason) => reason,
    };
    if now.saturating_duration_since(since) <= stale_after {
        return Health::Pending;
    }
    match &source.scope {
        Scope::Local { server_id } if source.fresh(now, stale_after).next().is_some() => {
            Health::ForeignServers {
                own: server_id.clone(),
                seen: source
                    .fresh(now, stale_after)
                    .map(|(id, _)| id.clone())
                    .take(SEEN_IDS_SHOWN)
                    .collect(),
            }
        }
        _ => Health::Down(reason),
    }
}
