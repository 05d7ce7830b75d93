//! The running sources, one task each, and what a reload does to them: sources whose
//! config did not change keep their task (and their connection to the app); changed ones
//! stop and start again; removed ones stop; added ones start.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::sync::SyncConfig;
use crate::sources::push::PushEndpoint;
use crate::sources::{Outbox, SourceConfig, SourceContext, SourceKind};
use crate::telemetry::Telemetry;
use crate::update::{SourceId, Update};

/// The push source as the HTTP server finds it: `None` while none is configured.
pub(crate) type PushSlot = watch::Receiver<Option<Arc<PushEndpoint>>>;

/// What a reload does to the running sources.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// For each source of the new config, in order: the running task that carries on.
    pub keep: Vec<Option<SourceId>>,
    /// Running sources that stop: removed, or changed (they start again under a new id).
    pub stop: Vec<SourceId>,
}

/// Compares the running sources with the new config, by name: a source runs on when its
/// config is equal and `[sync]`, which every source task is given, did not change.
pub(crate) fn plan(
    running: &[(SourceId, &SourceConfig)],
    sync_changed: bool,
    next: &[SourceConfig],
) -> Plan {
    let keep: Vec<Option<SourceId>> = next
        .iter()
        .map(|source| {
            running
                .iter()
                .find(|(_, old)| !sync_changed && *old == source)
                .map(|(id, _)| *id)
        })
        .collect();
    let stop = running
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !keep.contains(&Some(*id)))
        .collect();
    Plan { keep, stop }
}

struct Running {
    id: SourceId,
    config: SourceConfig,
    cancel: CancellationToken,
}

/// The source tasks, and the push source's endpoint for the HTTP server.
pub(crate) struct Sources {
    running: Vec<Running>,
    next_id: usize,
    updates: mpsc::Sender<Update>,
    push: watch::Sender<Option<Arc<PushEndpoint>>>,
    telemetry: Arc<Telemetry>,
    /// The exporter's shutdown; each source task gets a child of it.
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Sources {
    pub(crate) fn new(
        updates: mpsc::Sender<Update>,
        telemetry: Arc<Telemetry>,
        cancel: CancellationToken,
        tasks: TaskTracker,
    ) -> (Sources, PushSlot) {
        let (push, slot) = watch::channel(None);
        let sources = Sources {
            running: Vec::new(),
            next_id: 0,
            updates,
            push,
            telemetry,
            cancel,
            tasks,
        };
        (sources, slot)
    }

    /// The running sources, with the config each runs.
    pub(crate) fn running(&self) -> Vec<(SourceId, &SourceConfig)> {
        self.running.iter().map(|r| (r.id, &r.config)).collect()
    }

    /// An id for a source about to start: never one given before.
    pub(crate) fn next_id(&mut self) -> SourceId {
        let id = SourceId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Spawns the task of `source` under `id`.
    pub(crate) fn start(&mut self, id: SourceId, source: SourceConfig, sync: SyncConfig) {
        let outbox = Outbox::new(id, self.updates.clone());
        if let SourceKind::Push(push_config) = &source.kind {
            self.push.send_replace(Some(Arc::new(PushEndpoint {
                name: source.name.clone(),
                config: push_config.clone(),
                outbox: outbox.clone(),
                telemetry: self.telemetry.clone(),
            })));
        }
        let cancel = self.cancel.child_token();
        let cx = SourceContext::new(
            source.name.clone(),
            outbox,
            self.telemetry.clone(),
            cancel.clone(),
            sync,
            source.scope.clone(),
            source.own_server_id.clone(),
        );
        self.tasks.spawn(source.clone().run(cx));
        self.running.push(Running {
            id,
            config: source,
            cancel,
        });
    }

    /// Stops the tasks of `ids` (a socketio_admin source leaves the admin namespace).
    pub(crate) fn stop(&mut self, ids: &[SourceId]) {
        self.running.retain(|r| {
            if !ids.contains(&r.id) {
                return true;
            }
            r.cancel.cancel();
            if matches!(r.config.kind, SourceKind::Push(_)) {
                self.push.send_replace(None);
            }
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn sources(tables: &str) -> Vec<SourceConfig> {
        let text = format!("environment = \"t\"\n{tables}");
        Config::parse_with_env(&text, &|_| None).unwrap().sources
    }

    const A: &str = "[[sources]]\nname = \"a\"\ntype = \"report_file\"\npath = \"/a.json\"\n";
    const B: &str = "[[sources]]\nname = \"b\"\ntype = \"report_file\"\npath = \"/b.json\"\n";
    const B_GROUPED: &str = "[[sources]]\nname = \"b\"\ntype = \"report_file\"\npath = \"/b.json\"\n\
        [[sources.namespace_groups]]\npattern = '^/t-\\d+$'\nreplace = \"/t-*\"\n";
    const C: &str = "[[sources]]\nname = \"c\"\ntype = \"push\"\n";

    fn running(configs: &[SourceConfig]) -> Vec<(SourceId, &SourceConfig)> {
        configs
            .iter()
            .enumerate()
            .map(|(i, c)| (SourceId(i), c))
            .collect()
    }

    #[test]
    fn unchanged_sources_run_on_wherever_they_move() {
        let old = sources(&format!("{A}{B}"));
        let next = sources(&format!("{C}{B}{A}"));
        let plan = plan(&running(&old), false, &next);
        assert_eq!(
            plan,
            Plan {
                keep: vec![None, Some(SourceId(1)), Some(SourceId(0))],
                stop: vec![],
            }
        );
    }

    #[test]
    fn changed_sources_restart_and_removed_ones_stop() {
        let old = sources(&format!("{A}{B}{C}"));
        let next = sources(&format!("{B_GROUPED}{C}"));
        let plan = plan(&running(&old), false, &next);
        assert_eq!(
            plan,
            Plan {
                keep: vec![None, Some(SourceId(2))],
                stop: vec![SourceId(0), SourceId(1)],
            }
        );
    }

    #[test]
    fn namespace_rules_compare_by_pattern_text() {
        let once = sources(B_GROUPED);
        let again = sources(B_GROUPED);
        assert_eq!(once, again, "two compilations of one pattern are equal");
        let plan = plan(&running(&once), false, &again);
        assert_eq!(plan.keep, [Some(SourceId(0))]);
    }

    #[test]
    fn a_sync_change_restarts_every_source() {
        let old = sources(&format!("{A}{B}"));
        let plan = plan(&running(&old), true, &old);
        assert_eq!(plan.keep, [None, None]);
        assert_eq!(plan.stop, [SourceId(0), SourceId(1)]);
    }
}
