//! The controller actor: one per controller, generic over its [`Reconciler`] (the pure
//! core plus which keys a change wakes). It runs only while told it leads ([`Lead`]).
//!
//! ```text
//!  CacheUpdate ─► keys_for(change) ─► WorkQueue ◄─ resync (30 s) ◄─ requeue_after / back-off
//!                                        │            (one timer, armed for the earliest)
//!                                        │ pop (≤ workers keys at once, one per key)
//!                                        ▼
//!           read cache ─► reconcile(&cache, key, now, seed) ─► EventFilter
//!                                        │ actions (the cache lock is released)
//!                                        ▼
//!             execute_all(term) ─► done(key, visible at revision R): the key waits
//!             until the cache reaches R (expectations), failures back off
//!  pipelined reconcilers (the scheduler): actions ─► pipeline ─► ≤ pipelined_writes in
//!             flight; the key is done at once, the next reconcile runs once the pipeline
//!             has started everything; each result goes back to the reconciler (written)
//!  Lead{None}     ─► cancel in-flight writes, drop every queued key and pipelined action
//!  Lead{Some(t)}  ─► enqueue every key, write under term t
//! ```
//!
//! Owns the scheduling of reconciles. It must not read the store (only the cache) and
//! must not write outside `execute_all`, so every write carries the term it was decided in.

use std::collections::VecDeque;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::action::{Action, Reconciled};
use crate::cache::{Cache, CacheReader};
use crate::runtime::api::{ApiError, ClusterApi, Outcome};
use crate::runtime::event_budget::EventBudget;
use crate::runtime::executor::{describe, execute_all, harmless, EventFilter, Report};
use crate::runtime::informer::{CacheUpdate, Change};
use crate::runtime::queue::WorkQueue;
use crate::runtime::RuntimeConfig;
use rafter_proto::Timestamp;

/// A controller's pure side as the actor drives it.
pub(crate) trait Reconciler: Unpin + Send + 'static {
    /// What one reconcile is about.
    type Key: Clone + Eq + Hash + fmt::Debug + Unpin + Send + 'static;

    /// The controller's name, for logs.
    fn name(&self) -> &'static str;

    /// The keys a change wakes.
    fn keys_for(&mut self, cache: &Cache, change: &Change, keys: &mut Vec<Self::Key>);

    /// Every key (after a list, on a resync, when leadership starts).
    fn all_keys(&self, cache: &Cache) -> Vec<Self::Key>;

    /// The pure core.
    fn reconcile(
        &mut self,
        cache: &Cache,
        key: &Self::Key,
        now: Timestamp,
        seed: u64,
    ) -> Reconciled;

    /// The key reconciled again when a reconcile of `key` asks for it
    /// (`Reconciled::requeue_after`): `key` itself unless the reconciler says otherwise.
    fn requeue_key(&self, key: &Self::Key) -> Self::Key {
        key.clone()
    }

    /// Whether this controller's writes are pipelined: each reconcile's actions join one
    /// queue carried out with a bounded number in flight, and the key is free for its
    /// next reconcile at once instead of waiting for its writes and the cache
    /// (expectations). A pipelined reconciler must itself remember what it decided and
    /// has not yet seen in the cache (the scheduler's assumed pods).
    fn pipelined(&self) -> bool {
        false
    }

    /// How one pipelined write ended; returns the actions that waited for it (the
    /// scheduler's `Scheduled` event for a Binding written), pipelined next.
    fn written(&mut self, _action: &Action, _result: &Result<Outcome, ApiError>) -> Vec<Action> {
        Vec::new()
    }

    /// Leadership changed: forget what was decided under the previous term.
    fn reset(&mut self) {}
}

/// Whether controllers lead, and in which term; sent by the leadership actor.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub(crate) struct Lead {
    /// `Some(term)`: reconcile and write under `term`; `None`: stop at once.
    pub term: Option<u64>,
}

/// Room for pipelined actions kept once the pipeline is empty.
const PIPELINE_KEPT: usize = 1024;

/// The current time as controllers pass it to cores.
pub(crate) fn wall_clock() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
}

/// splitmix64: seeds for cores from a counter.
fn next_seed(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The actor around one reconciler.
pub(crate) struct Controller<R: Reconciler> {
    reconciler: R,
    api: Arc<dyn ClusterApi>,
    reader: CacheReader,
    queue: WorkQueue<R::Key>,
    term: Option<u64>,
    epoch: u64,
    revision: u64,
    running: std::collections::HashMap<R::Key, SpawnHandle>,
    /// Pipelined actions not yet started (pipelined reconcilers only).
    pipeline: VecDeque<Action>,
    /// Pipelined writes in flight, by sequence number.
    writing: std::collections::HashMap<u64, SpawnHandle>,
    write_seq: u64,
    /// Pipelined writes that failed in a row (back-off of the next reconcile).
    write_failures: u32,
    /// The one timer armed for the queue's earliest delayed key, and when it fires.
    timer: Option<(Instant, SpawnHandle)>,
    events: EventFilter,
    budget: EventBudget,
    config: RuntimeConfig,
    seed: u64,
}

impl<R: Reconciler> Controller<R> {
    pub(crate) fn new(
        reconciler: R,
        api: Arc<dyn ClusterApi>,
        reader: CacheReader,
        config: RuntimeConfig,
    ) -> Controller<R> {
        Controller {
            reconciler,
            api,
            reader,
            queue: WorkQueue::new(config.backoff),
            term: None,
            epoch: 0,
            revision: 0,
            running: std::collections::HashMap::new(),
            pipeline: VecDeque::new(),
            writing: std::collections::HashMap::new(),
            write_seq: 0,
            write_failures: 0,
            timer: None,
            events: EventFilter::new(config.event_window),
            budget: EventBudget::new(config.scheduled_events),
            seed: wall_clock().unix_millis() as u64,
            config,
        }
    }

    fn enqueue_all(&mut self) {
        let keys = {
            let cache = self.reader.read();
            self.reconciler.all_keys(&cache)
        };
        for key in keys {
            self.queue.add(key);
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some(term) = self.term else {
            return;
        };
        while self.queue.active_len() < self.config.workers {
            if !self.pipeline.is_empty() {
                // Decisions wait until the previous ones are under way: what arrives in
                // the meantime is decided together in the next reconcile.
                break;
            }
            let Some(key) = self.queue.pop() else {
                break;
            };
            self.run(key, term, ctx);
        }
        self.arm_timer(ctx);
    }

    /// Arms one timer for the queue's earliest delayed key (a requeue or a back-off), or
    /// keeps the one armed if it fires no later. Nothing is armed while nothing is
    /// delayed, so an idle controller (and every controller of a follower) never wakes.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.queue.next_due() else {
            return;
        };
        if let Some((armed, handle)) = self.timer {
            if armed <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.queue.take_due(Instant::now());
            act.pump(ctx);
        });
        self.timer = Some((at, handle));
    }

    fn run(&mut self, key: R::Key, term: u64, ctx: &mut Context<Self>) {
        let now = wall_clock();
        let seed = next_seed(&mut self.seed);
        let reconciled = {
            let cache = self.reader.read();
            self.reconciler.reconcile(&cache, &key, now, seed)
        };
        let instant = Instant::now();
        if let Some(after) = reconciled.requeue_after {
            self.queue
                .add_after(self.reconciler.requeue_key(&key), after, instant);
        }
        let actions = self.admit_events(reconciled.actions, instant);
        if actions.is_empty() {
            self.queue.done(&key, None, false, instant);
            return;
        }
        let name = self.reconciler.name();
        tracing::debug!(
            controller = name,
            ?key,
            term,
            actions = actions.len(),
            "reconciled"
        );
        if self.reconciler.pipelined() {
            self.pipeline.extend(actions);
            self.queue.done(&key, None, false, instant);
            self.pump_writes(term, ctx);
            return;
        }
        let epoch = self.epoch;
        let api = Arc::clone(&self.api);
        let done_key = key.clone();
        let handle = ctx.spawn(
            execute_all(api, term, actions, name)
                .into_actor(self)
                .map(move |report, act, ctx| act.finished(done_key, epoch, report, ctx)),
        );
        self.running.insert(key, handle);
    }

    /// `actions` without the events recently recorded or past the `Scheduled` budget.
    fn admit_events(&mut self, actions: Vec<Action>, now: Instant) -> Vec<Action> {
        let actions = self.events.filter(actions, now);
        self.budget.admit(actions, now)
    }

    /// Starts pipelined writes until the pipeline is empty or the limit is in flight.
    fn pump_writes(&mut self, term: u64, ctx: &mut Context<Self>) {
        while self.writing.len() < self.config.pipelined_writes.max(1) {
            let Some(action) = self.pipeline.pop_front() else {
                break;
            };
            self.write_seq += 1;
            let (seq, epoch) = (self.write_seq, self.epoch);
            let api = Arc::clone(&self.api);
            let controller = self.reconciler.name();
            let write = async move {
                let result = api.execute(controller, action.clone(), term).await;
                (action, result)
            };
            let handle = ctx.spawn(write.into_actor(self).map(
                move |(action, result), act, ctx| act.written(seq, epoch, action, result, ctx),
            ));
            self.writing.insert(seq, handle);
        }
        if self.pipeline.is_empty() && self.pipeline.capacity() > PIPELINE_KEPT {
            // A burst's room is given back: an `Action` is an object's size.
            self.pipeline.shrink_to(PIPELINE_KEPT);
        }
    }

    fn written(
        &mut self,
        seq: u64,
        epoch: u64,
        action: Action,
        result: Result<Outcome, ApiError>,
        ctx: &mut Context<Self>,
    ) {
        if epoch != self.epoch {
            return;
        }
        self.writing.remove(&seq);
        let name = self.reconciler.name();
        match &result {
            Ok(_) => self.write_failures = 0,
            Err(e) if harmless(&action, e) => {
                tracing::debug!(controller = name, action = %describe(&action), error = %e, "harmless failure");
            }
            Err(e) => {
                match e {
                    ApiError::Conflict(_)
                    | ApiError::NotFound(_)
                    | ApiError::AlreadyExists(_)
                    | ApiError::Fenced(_) => {
                        tracing::debug!(controller = name, action = %describe(&action), error = %e, "write raced; retrying")
                    }
                    _ => {
                        tracing::warn!(controller = name, action = %describe(&action), error = %e, "write failed; retrying with back-off")
                    }
                }
                self.write_failures = self.write_failures.saturating_add(1);
                let delay = self.config.backoff.delay(self.write_failures);
                let keys = {
                    let cache = self.reader.read();
                    self.reconciler.all_keys(&cache)
                };
                let now = Instant::now();
                for key in keys {
                    self.queue.add_after(key, delay, now);
                }
            }
        }
        let follow = self.reconciler.written(&action, &result);
        if !follow.is_empty() {
            // Next in line, ahead of the queued writes: what waited for this write goes
            // out as soon as it could, and is not held behind a whole pass.
            let now = Instant::now();
            let follow = self.admit_events(follow, now);
            for action in follow.into_iter().rev() {
                self.pipeline.push_front(action);
            }
        }
        let Some(term) = self.term else {
            return;
        };
        self.pump_writes(term, ctx);
        self.pump(ctx);
    }

    fn finished(&mut self, key: R::Key, epoch: u64, report: Report, ctx: &mut Context<Self>) {
        if epoch != self.epoch {
            return;
        }
        self.running.remove(&key);
        match &report.error {
            // A stale cache or a lost term: expected, retried quietly.
            Some(
                e @ (ApiError::Conflict(_)
                | ApiError::NotFound(_)
                | ApiError::AlreadyExists(_)
                | ApiError::Fenced(_)),
            ) => {
                tracing::debug!(controller = self.reconciler.name(), ?key, error = %e, "reconcile raced; retrying");
            }
            Some(e) => {
                tracing::warn!(controller = self.reconciler.name(), ?key, error = %e, writes = report.writes, "reconcile failed; retrying with back-off");
            }
            None => {}
        }
        self.queue.done(
            &key,
            report.visible_at,
            report.error.is_some(),
            Instant::now(),
        );
        self.pump(ctx);
    }
}

impl<R: Reconciler> Actor for Controller<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.resync, |act, ctx| {
            if act.term.is_some() {
                act.enqueue_all();
                act.pump(ctx);
            }
        });
    }
}

impl<R: Reconciler> Handler<CacheUpdate> for Controller<R> {
    type Result = ();

    fn handle(&mut self, msg: CacheUpdate, ctx: &mut Self::Context) {
        self.revision = msg.revision;
        self.queue.observe(msg.revision);
        if self.term.is_none() {
            return;
        }
        if msg.relisted {
            self.enqueue_all();
        } else if !msg.changes.is_empty() {
            let mut keys = Vec::new();
            {
                let cache = self.reader.read();
                for change in msg.changes.iter() {
                    self.reconciler.keys_for(&cache, change, &mut keys);
                }
            }
            for key in keys {
                self.queue.add(key);
            }
        }
        self.pump(ctx);
    }
}

impl<R: Reconciler> Handler<Lead> for Controller<R> {
    type Result = ();

    fn handle(&mut self, msg: Lead, ctx: &mut Self::Context) {
        if msg.term == self.term {
            return;
        }
        self.epoch += 1;
        for (_, handle) in self.running.drain() {
            ctx.cancel_future(handle);
        }
        for (_, handle) in self.writing.drain() {
            ctx.cancel_future(handle);
        }
        if let Some((_, handle)) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.pipeline.clear();
        self.write_failures = 0;
        self.reconciler.reset();
        self.queue.clear();
        self.queue.observe(self.revision);
        self.term = msg.term;
        match msg.term {
            Some(term) => {
                tracing::debug!(controller = self.reconciler.name(), term, "leading");
                self.enqueue_all();
                self.pump(ctx);
            }
            None => tracing::debug!(controller = self.reconciler.name(), "stopped"),
        }
    }
}

#[cfg(test)]
#[path = "controller_test.rs"]
mod tests;
