//! [`Relister`]: the node-wide look at the runtime that wakes pod workers when their
//! containers change on their own (a process exits, a sandbox dies, someone removes a
//! container).
//!
//! ```text
//!   every period: list sandboxes + list containers (two runtime calls, however many pods)
//!        ─► per pod uid: a fingerprint of its sandboxes' and containers' ids and states
//!        ─► uids whose fingerprint differs from the last listing (new, changed, gone)
//!        ─► the manager, which wakes those pods' workers
//! ```
//!
//! Without it every worker would have to ask the runtime about its own pod every few
//! seconds (three or more calls per pod), which at a hundred pods is most of what the
//! runtime serves while pods are starting. With it a worker's own resync can be rare.
//!
//! Owns only the last listing's fingerprints. It must not act on the runtime, nor decide
//! anything about a pod: woken workers observe and act themselves. A failed listing is
//! logged and skipped (the workers' resync still covers their pods).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::error::RuntimeError;
use crate::runtime::ContainerRuntime;
use crate::status::{ContainerSummary, Sandbox};

/// Whether a sandbox with these labels is this agent's.
type Ours = Box<dyn Fn(&BTreeMap<String, String>) -> bool + Send + Sync>;

/// Lists the runtime once per period and reports the pods that changed.
pub(crate) struct Relister {
    runtime: Arc<dyn ContainerRuntime>,
    ours: Ours,
    last: HashMap<String, u64>,
}

impl Relister {
    pub(crate) fn new(
        runtime: Arc<dyn ContainerRuntime>,
        ours: impl Fn(&BTreeMap<String, String>) -> bool + Send + Sync + 'static,
    ) -> Relister {
        Relister {
            runtime,
            ours: Box::new(ours),
            last: HashMap::new(),
        }
    }

    /// Lists the runtime and returns the uids of the pods whose sandboxes or containers
    /// differ from the last listing (all of them, the first time).
    pub(crate) async fn relist(&mut self) -> Result<Vec<String>, RuntimeError> {
        let sandboxes = self.runtime.list_sandboxes().await?;
        let containers = self.runtime.list_containers(None).await?;
        let now = fingerprints(
            sandboxes.iter().filter(|s| (self.ours)(&s.labels)),
            &containers,
        );
        let mut changed: Vec<String> = now
            .iter()
            .filter(|(uid, print)| self.last.get(*uid) != Some(*print))
            .map(|(uid, _)| uid.clone())
            .collect();
        changed.extend(
            self.last
                .keys()
                .filter(|uid| !now.contains_key(*uid))
                .cloned(),
        );
        self.last = now;
        Ok(changed)
    }

    /// Relists every `period` and sends each non-empty set of changed uids to `changes`,
    /// until `shutdown` turns true or the receiver goes away.
    pub(crate) async fn run(
        mut self,
        period: Duration,
        changes: mpsc::Sender<Vec<String>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                    continue;
                }
            }
            match self.relist().await {
                Ok(uids) if uids.is_empty() => {}
                Ok(uids) => {
                    debug!(pods = uids.len(), "runtime listing: pods changed");
                    if changes.send(uids).await.is_err() {
                        return;
                    }
                }
                Err(e) => warn!(error = %e, "cannot list the runtime's pods; skipped"),
            }
        }
    }
}

/// Per pod uid, a hash of its sandboxes' and their containers' ids and states.
fn fingerprints<'a>(
    sandboxes: impl Iterator<Item = &'a Sandbox>,
    containers: &[ContainerSummary],
) -> HashMap<String, u64> {
    let mut by_sandbox: HashMap<&str, Vec<&ContainerSummary>> = HashMap::new();
    for c in containers {
        by_sandbox.entry(c.sandbox_id.as_str()).or_default().push(c);
    }
    let mut parts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for sb in sandboxes.filter(|s| !s.pod_uid.is_empty()) {
        let entry = parts.entry(sb.pod_uid.as_str()).or_default();
        entry.push(format!("s {} {:?}", sb.id, sb.state));
        for c in by_sandbox.get(sb.id.as_str()).into_iter().flatten() {
            entry.push(format!("c {} {:?}", c.id, c.state));
        }
    }
    parts
        .into_iter()
        .map(|(uid, mut items)| {
            items.sort();
            let mut hasher = DefaultHasher::new();
            items.hash(&mut hasher);
            (uid.to_owned(), hasher.finish())
        })
        .collect()
}

#[cfg(test)]
#[path = "relist_test.rs"]
mod tests;
