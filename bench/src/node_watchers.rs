//! Watchers shaped as node agents' pod watches: one per hollow node, pods of a namespace
//! with `spec.nodeName=<node>`, spread over every master, each keeping the names of the
//! pods it saw bound to its node.
//!
//! Owns [`NodeWatchers`]. Every pod change reaches every master's gateway, which tests it
//! against every watcher's selector; only the watcher of the pod's node receives it. This
//! is the load a master carries for thousands of agents, and what its watch cache's
//! decode-once serves. It must not write anything.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rafter_client::{Client, WatchEventType, WatchParams};
use rafter_proto::{Kind, Object};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::hollow_nodes::node_name;

/// What the watchers saw, shared with their tasks.
#[derive(Default)]
pub(crate) struct Seen {
    /// Per watcher (node index), the distinct pods it saw on its node.
    pub(crate) pods: Vec<AtomicUsize>,
    /// Events delivered to all watchers.
    pub(crate) events: AtomicU64,
    /// Watches that ended or failed.
    pub(crate) failed: AtomicUsize,
}

/// Node-shaped pod watchers, stopped when dropped.
pub(crate) struct NodeWatchers {
    pub(crate) seen: Arc<Seen>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for NodeWatchers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl NodeWatchers {
    /// Opens `count` watches (nodes `0..count`) of `namespace`'s pods from `revision`,
    /// watcher `i` on `clients[i % clients.len()]`.
    pub(crate) fn start(
        clients: &[Client],
        namespace: &str,
        revision: &str,
        count: usize,
    ) -> NodeWatchers {
        let seen = Arc::new(Seen {
            pods: (0..count).map(|_| AtomicUsize::new(0)).collect(),
            ..Seen::default()
        });
        let mut tasks = Vec::new();
        for i in 0..count {
            let Some(client) = clients.get(i % clients.len().max(1)).cloned() else {
                break;
            };
            let (seen, namespace, revision) =
                (seen.clone(), namespace.to_owned(), revision.to_owned());
            tasks.push(tokio::spawn(async move {
                let node = node_name(i);
                let params = WatchParams {
                    field_selector: format!("spec.nodeName={node}"),
                    ..WatchParams::default()
                };
                let mut names = HashSet::new();
                let mut stream =
                    Box::pin(client.watch(Kind::Pod, Some(&namespace), &params, Some(&revision)));
                while let Some(event) = stream.next().await {
                    let Ok(event) = event else {
                        seen.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    seen.events.fetch_add(1, Ordering::Relaxed);
                    if event.event_type == WatchEventType::Deleted {
                        continue;
                    }
                    let Some(Object::Pod(pod)) = &event.object else {
                        continue;
                    };
                    let on_node = pod.spec.as_ref().is_some_and(|s| s.node_name == node);
                    let name = pod.metadata.as_ref().map(|m| m.name.clone());
                    if let (true, Some(name)) = (on_node, name) {
                        if names.insert(name) {
                            seen.pods[i].store(names.len(), Ordering::Relaxed);
                        }
                    }
                }
                seen.failed.fetch_add(1, Ordering::Relaxed);
            }));
        }
        NodeWatchers { seen, tasks }
    }

    /// Waits until watcher `i` has seen `expected(i)` pods, for every watcher, or until
    /// `wait` runs out. Returns how many watchers saw all of theirs.
    pub(crate) async fn wait_complete(
        &self,
        expected: impl Fn(usize) -> usize,
        wait: Duration,
    ) -> usize {
        let deadline = Instant::now() + wait;
        loop {
            let complete = self
                .seen
                .pods
                .iter()
                .enumerate()
                .filter(|(i, n)| n.load(Ordering::Relaxed) >= expected(*i))
                .count();
            if complete == self.seen.pods.len() || Instant::now() >= deadline {
                return complete;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
