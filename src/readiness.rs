//! Whether the exporter is ready to serve: true while its sync loop runs. It never
//! depends on the app, so a broken app cannot take its monitoring out of a Service.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub(crate) fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Ready until the guard is dropped, which happens however its holder ends, a panic
    /// included.
    pub(crate) fn while_alive(&self) -> ReadyGuard {
        self.0.store(true, Ordering::Relaxed);
        ReadyGuard(self.0.clone())
    }
}

pub(crate) struct ReadyGuard(Arc<AtomicBool>);

impl Drop for ReadyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}
