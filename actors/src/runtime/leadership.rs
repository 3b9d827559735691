//! The leadership actor: follows the leadership watch (`Some(term)` while this master is
//! the Raft leader) and starts and stops every controller.
//!
//! ```text
//!  watch: Some(t) ─► stop all ─► barrier: r = ClusterApi::revision() (linearizable)
//!                                         wait until the cache reaches r
//!                               ─► Lead{Some(t)} to all; handover time recorded
//!  watch: None / other term ─► Lead{None} to all at once (within the watch update)
//! ```
//!
//! The barrier is what makes a new leader safe: every write committed under an earlier
//! term is in the cache before the first reconcile, so a ReplicaSet the old leader created
//! is seen, not created again (and writes still in flight from an older term cannot land
//! after it: they are either committed before the barrier's read or fenced forever).
//!
//! Owns [`RuntimeStatus`]. It must not reconcile or write.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::watch;

use crate::runtime::api::ClusterApi;
use crate::runtime::controller::Lead;

/// What the controller runtime is doing, for logs, metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeStatus {
    /// The leadership last observed: `Some(term)` while this master leads.
    pub leadership: Option<u64>,
    /// The term the controllers are reconciling in (`None`: they are stopped).
    pub active_term: Option<u64>,
    /// How long the last start took: from observing leadership to controllers
    /// reconciling (the barrier: a linearizable read and the cache catching up).
    pub last_handover: Option<Duration>,
    /// How many times the controllers started.
    pub activations: u64,
    /// How many times they were stopped.
    pub stops: u64,
}

/// A leadership value read from the watch.
#[derive(Message)]
#[rtype(result = "()")]
struct Observed(Option<u64>);

/// The leadership actor.
pub(crate) struct Leadership {
    api: Arc<dyn ClusterApi>,
    watch: Option<watch::Receiver<Option<u64>>>,
    cache_revision: watch::Receiver<u64>,
    controllers: Vec<Recipient<Lead>>,
    status: watch::Sender<RuntimeStatus>,
    observed: Option<u64>,
    epoch: u64,
    barrier: Option<SpawnHandle>,
    /// The term controllers were last told to lead in, until they are told to stop.
    started: Option<u64>,
    pump: Option<actix_rt::task::JoinHandle<()>>,
}

impl Leadership {
    pub(crate) fn new(
        api: Arc<dyn ClusterApi>,
        watch: watch::Receiver<Option<u64>>,
        cache_revision: watch::Receiver<u64>,
        controllers: Vec<Recipient<Lead>>,
        status: watch::Sender<RuntimeStatus>,
    ) -> Leadership {
        Leadership {
            api,
            watch: Some(watch),
            cache_revision,
            controllers,
            status,
            observed: None,
            epoch: 0,
            barrier: None,
            started: None,
            pump: None,
        }
    }

    /// Tells every controller; resolves once all of them have handled it.
    fn tell(&self, term: Option<u64>) -> impl std::future::Future<Output = ()> + 'static {
        let sends: Vec<_> = self
            .controllers
            .iter()
            .map(|c| c.send(Lead { term }))
            .collect();
        async move {
            futures::future::join_all(sends).await;
        }
    }

    /// Waits until the cache holds every write committed so far, then starts the
    /// controllers in `term`.
    fn start_barrier(&mut self, term: u64, observed_at: Instant, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        let api = Arc::clone(&self.api);
        let mut cache_revision = self.cache_revision.clone();
        let barrier = async move {
            let mut delay = Duration::from_millis(20);
            let target = loop {
                match api.revision().await {
                    Ok(revision) => break revision,
                    Err(e) => {
                        tracing::debug!(error = %e, "leadership barrier: revision read failed; retrying");
                        actix_rt::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                }
            };
            let reached = cache_revision.wait_for(|r| *r >= target).await.is_ok();
            (target, reached)
        };
        self.barrier = Some(ctx.spawn(barrier.into_actor(self).map(
            move |(target, reached), act, ctx| {
                if epoch != act.epoch || !reached {
                    return;
                }
                act.barrier = None;
                act.started = Some(term);
                ctx.spawn(act.tell(Some(term)).into_actor(act));
                let handover = observed_at.elapsed();
                act.status.send_modify(|s| {
                    s.active_term = Some(term);
                    s.last_handover = Some(handover);
                    s.activations += 1;
                });
                tracing::info!(
                    term,
                    revision = target,
                    handover_ms = handover.as_secs_f64() * 1000.0,
                    "controllers active on this master (leader)"
                );
            },
        )));
    }
}

impl Actor for Leadership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(mut watch) = self.watch.take() else {
            return;
        };
        let addr = ctx.address();
        self.pump = Some(actix_rt::spawn(async move {
            loop {
                let value = *watch.borrow_and_update();
                if addr.send(Observed(value)).await.is_err() {
                    return;
                }
                if watch.changed().await.is_err() {
                    // The leadership source is gone: this master no longer knows it leads.
                    let _ = addr.send(Observed(None)).await;
                    return;
                }
            }
        }));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
        }
        for controller in &self.controllers {
            controller.do_send(Lead { term: None });
        }
    }
}

impl Handler<Observed> for Leadership {
    type Result = ();

    fn handle(&mut self, Observed(leadership): Observed, ctx: &mut Self::Context) {
        if leadership == self.observed {
            return;
        }
        let observed_at = Instant::now();
        let previous = self.observed;
        self.observed = leadership;
        self.epoch += 1;
        let epoch = self.epoch;
        if let Some(barrier) = self.barrier.take() {
            ctx.cancel_future(barrier);
        }
        self.status.send_modify(|s| s.leadership = leadership);
        let was_active = self.started.take().is_some();
        let stop = self.tell(None);
        ctx.spawn(stop.into_actor(self).map(move |(), act, ctx| {
            if was_active {
                act.status.send_modify(|s| {
                    s.active_term = None;
                    s.stops += 1;
                });
                tracing::info!(
                    ?previous,
                    now = ?leadership,
                    stop_ms = observed_at.elapsed().as_secs_f64() * 1000.0,
                    "leadership changed: controllers stopped"
                );
            }
            if let (Some(term), true) = (leadership, epoch == act.epoch) {
                act.start_barrier(term, observed_at, ctx);
            }
        }));
    }
}
