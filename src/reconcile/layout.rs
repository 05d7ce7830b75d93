//! A new set of sources from a config reload, taken by the sync loop between two updates.

use tokio::sync::oneshot;

use super::SourceInput;
use crate::config::sync::SyncConfig;
use crate::update::SourceId;

/// What the sync loop needs of a reloaded config.
pub(crate) struct Layout {
    /// Value of the `environment` label.
    pub environment: String,
    pub sync: SyncConfig,
    /// The sources in config order: the id of each one's running task, and an empty input
    /// for a source the loop does not run yet.
    pub sources: Vec<(SourceId, SourceInput)>,
    /// Answered once the loop runs the new layout, so that the reload starts new sources
    /// only when their updates can no longer be mistaken for stale ones.
    pub taken: oneshot::Sender<()>,
}

/// The sources after a reload, each with its running id: a source whose task runs on
/// keeps what it holds (its counts, health, drift and corrections), so its series never
/// blink; a new or restarted one starts empty; one that is not in `new` leaves with
/// everything it held.
pub(crate) fn relayout(
    old: Vec<(SourceId, SourceInput)>,
    new: Vec<(SourceId, SourceInput)>,
) -> Vec<(SourceId, SourceInput)> {
    let mut old: Vec<Option<(SourceId, SourceInput)>> = old.into_iter().map(Some).collect();
    new.into_iter()
        .map(|(id, fresh)| {
            let kept = old
                .iter_mut()
                .find(|slot| slot.as_ref().is_some_and(|(old_id, _)| *old_id == id))
                .and_then(Option::take);
            kept.unwrap_or((id, fresh))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::namespaces::NamespaceRules;
    use crate::reconcile::Inputs;
    use crate::sources::Scope;
    use crate::update::{Event, ServerCounts};

    fn input(name: &str) -> SourceInput {
        SourceInput::empty(
            name.to_owned(),
            Scope::Cluster,
            "own".to_owned(),
            NamespaceRules {
                groups: Vec::new(),
                max: 10,
            },
        )
    }

    fn counted(name: &str) -> SourceInput {
        let mut inputs = Inputs::new(vec![input(name)], Duration::from_secs(10));
        let counts = ServerCounts {
            server_id: Some("s1".into()),
            clients: None,
            namespaces: vec![("/chat".into(), 3)],
            age: Duration::ZERO,
            seq: None,
            engine: None,
        };
        inputs.apply(
            0,
            Event::Counts(counts),
            tokio::time::Instant::now(),
            std::time::SystemTime::now(),
        );
        inputs.sources.pop().unwrap()
    }

    #[test]
    fn a_running_source_keeps_its_counts_at_its_new_position() {
        let old = vec![(SourceId(0), counted("a")), (SourceId(1), counted("b"))];
        // `a` is removed, `c` added before `b`, which runs on.
        let new = vec![(SourceId(2), input("c")), (SourceId(1), input("b"))];
        let after = relayout(old, new);
        let ids: Vec<SourceId> = after.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [SourceId(2), SourceId(1)]);
        assert!(after[0].1.servers.is_empty(), "a new source starts empty");
        assert_eq!(after[1].1.servers["s1"].namespaces["/chat"], 3, "b kept");
    }

    #[test]
    fn a_restarted_source_starts_empty_under_its_new_id() {
        let old = vec![(SourceId(0), counted("a"))];
        let after = relayout(old, vec![(SourceId(1), input("a"))]);
        assert_eq!(after[0].0, SourceId(1));
        assert!(after[0].1.servers.is_empty());
    }
}
