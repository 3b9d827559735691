//! [`WorkQueue`]: the keys a controller has to reconcile, with de-duplication,
//! at most one reconcile of a key at a time, per-key exponential back-off, delayed
//! requeues, and expectations (a key is not handed out again before the cache shows the
//! writes of its previous reconcile).
//!
//! ```text
//!  add ─► queued? ─yes─► (nothing)          pop ─► active ─► done(expect rev R)
//!           │no                                               │
//!           ├─ active ─► dirty (re-added at done)             ├─ cache < R ─► waiting
//!           ├─ waiting ─► parked until observe(rev ≥ R)       └─ dirty ─► add
//!           └─ ready (FIFO)
//!  add_after(d) ─► delayed (earliest deadline per key) ─► take_due(now) ─► add
//! ```
//!
//! Owns bookkeeping only: no clock (callers pass `Instant`s), no I/O, no actor.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Back-off of a key that keeps failing: `base · 2^(failures-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 or more).
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1 << shift).min(self.max)
    }
}

/// The work queue of one controller.
#[derive(Debug)]
pub struct WorkQueue<K> {
    ready: VecDeque<K>,
    queued: HashSet<K>,
    active: HashSet<K>,
    dirty: HashSet<K>,
    waiting: HashMap<K, u64>,
    failures: HashMap<K, u32>,
    delayed: BTreeMap<(Instant, u64), K>,
    due: HashMap<K, (Instant, u64)>,
    seq: u64,
    revision: u64,
    backoff: Backoff,
}

impl<K> WorkQueue<K>
where
    K: Clone + Eq + Hash,
{
    /// An empty queue.
    pub fn new(backoff: Backoff) -> WorkQueue<K> {
        WorkQueue {
            ready: VecDeque::new(),
            queued: HashSet::new(),
            active: HashSet::new(),
            dirty: HashSet::new(),
            waiting: HashMap::new(),
            failures: HashMap::new(),
            delayed: BTreeMap::new(),
            due: HashMap::new(),
            seq: 0,
            revision: 0,
            backoff,
        }
    }

    /// Asks for `key` to be reconciled (once, however often it is asked).
    pub fn add(&mut self, key: K) {
        if self.queued.contains(&key) {
            return;
        }
        if self.active.contains(&key) {
            self.dirty.insert(key);
            return;
        }
        self.queued.insert(key.clone());
        if !self.waiting.contains_key(&key) {
            self.ready.push_back(key);
        }
    }

    /// Asks for `key` after `delay` (the earliest of several such asks wins).
    pub fn add_after(&mut self, key: K, delay: Duration, now: Instant) {
        let at = now + delay;
        if let Some(&(current, seq)) = self.due.get(&key) {
            if current <= at {
                return;
            }
            self.delayed.remove(&(current, seq));
        }
        self.seq += 1;
        self.delayed.insert((at, self.seq), key.clone());
        self.due.insert(key, (at, self.seq));
    }

    /// Moves the delayed keys whose time has come to the queue.
    pub fn take_due(&mut self, now: Instant) {
        while let Some((&(at, seq), _)) = self.delayed.first_key_value() {
            if at > now {
                break;
            }
            if let Some(key) = self.delayed.remove(&(at, seq)) {
                self.due.remove(&key);
                self.add(key);
            }
        }
    }

    /// When the earliest delayed key comes due (`None`: nothing is delayed).
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.first_key_value().map(|(&(at, _), _)| at)
    }

    /// The next key to reconcile; it stays active until [`WorkQueue::done`].
    pub fn pop(&mut self) -> Option<K> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.active.insert(key.clone());
        Some(key)
    }

    /// The reconcile of `key` finished; its writes are visible from revision `expect`
    /// (none written: `None`). `failed` counts a failure toward back-off and returns the
    /// delay after which to retry; success forgets earlier failures.
    pub fn done(
        &mut self,
        key: &K,
        expect: Option<u64>,
        failed: bool,
        now: Instant,
    ) -> Option<Duration> {
        self.active.remove(key);
        if let Some(revision) = expect.filter(|r| *r > self.revision) {
            let entry = self.waiting.entry(key.clone()).or_insert(revision);
            *entry = (*entry).max(revision);
        }
        let retry = if failed {
            let failures = self.failures.entry(key.clone()).or_insert(0);
            *failures += 1;
            let delay = self.backoff.delay(*failures);
            self.add_after(key.clone(), delay, now);
            Some(delay)
        } else {
            self.failures.remove(key);
            None
        };
        if self.dirty.remove(key) {
            self.add(key.clone());
        }
        retry
    }

    /// The cache reached `revision`: keys waiting for it may go again.
    pub fn observe(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
        if self.waiting.is_empty() {
            return;
        }
        let current = self.revision;
        let released: Vec<K> = self
            .waiting
            .iter()
            .filter(|(_, r)| **r <= current)
            .map(|(k, _)| k.clone())
            .collect();
        for key in released {
            self.waiting.remove(&key);
            if self.queued.contains(&key) {
                self.ready.push_back(key);
            }
        }
    }

    /// Forgets everything (leadership was lost): queued, delayed, waiting and failure
    /// counts. Keys still active are forgotten too; their `done` only clears them.
    pub fn clear(&mut self) {
        self.ready.clear();
        self.queued.clear();
        self.active.clear();
        self.dirty.clear();
        self.waiting.clear();
        self.failures.clear();
        self.delayed.clear();
        self.due.clear();
    }

    /// How many keys are being reconciled.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Whether nothing is queued, active, waiting or delayed.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.active.is_empty() && self.delayed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Backoff::default())
    }

    #[test]
    fn a_key_added_twice_is_reconciled_once() {
        let mut q = queue();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.pop(), Some("a"));
        assert_eq!(q.pop(), Some("b"));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_key_changed_while_active_goes_again_after_done() {
        let mut q = queue();
        let now = Instant::now();
        q.add("a");
        assert_eq!(q.pop(), Some("a"));
        q.add("a");
        assert_eq!(q.pop(), None, "never two reconciles of one key at once");
        q.done(&"a", None, false, now);
        assert_eq!(q.pop(), Some("a"));
    }

    #[test]
    fn a_key_waits_until_the_cache_shows_its_writes() {
        let mut q = queue();
        let now = Instant::now();
        q.observe(10);
        q.add("rs");
        assert_eq!(q.pop(), Some("rs"));
        q.done(&"rs", Some(15), false, now);
        q.add("rs");
        assert_eq!(q.pop(), None, "the cache is at 10, the writes at 15");
        q.observe(14);
        assert_eq!(q.pop(), None);
        q.observe(15);
        assert_eq!(q.pop(), Some("rs"));
    }

    #[test]
    fn failures_back_off_exponentially_and_success_forgets_them() {
        let mut q = queue();
        let now = Instant::now();
        q.add("a");
        q.pop();
        assert_eq!(
            q.done(&"a", None, true, now),
            Some(Duration::from_millis(10))
        );
        q.take_due(now + Duration::from_millis(10));
        q.pop();
        assert_eq!(
            q.done(&"a", None, true, now),
            Some(Duration::from_millis(20))
        );
        q.take_due(now + Duration::from_millis(30));
        q.pop();
        assert_eq!(q.done(&"a", None, false, now), None);
        q.add("a");
        q.pop();
        assert_eq!(
            q.done(&"a", None, true, now),
            Some(Duration::from_millis(10))
        );
        assert_eq!(Backoff::default().delay(40), Duration::from_secs(30));
    }

    #[test]
    fn delayed_keys_come_due_at_their_earliest_deadline() {
        let mut q = queue();
        let now = Instant::now();
        q.add_after("a", Duration::from_secs(10), now);
        q.add_after("a", Duration::from_secs(1), now);
        q.add_after("a", Duration::from_secs(5), now);
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(1)));
        q.take_due(now + Duration::from_millis(999));
        assert_eq!(q.pop(), None);
        q.take_due(now + Duration::from_secs(1));
        assert_eq!(q.pop(), Some("a"));
        q.done(&"a", None, false, now);
        assert_eq!(
            q.next_due(),
            None,
            "the later asks were merged into the first"
        );
        q.take_due(now + Duration::from_secs(20));
        assert_eq!(q.pop(), None, "the later asks were merged into the first");
    }

    #[test]
    fn clear_drops_all_work() {
        let mut q = queue();
        let now = Instant::now();
        q.add("a");
        q.add("b");
        q.pop();
        q.add_after("c", Duration::ZERO, now);
        q.clear();
        q.take_due(now);
        assert_eq!(q.pop(), None);
        assert!(q.is_idle());
    }
}
