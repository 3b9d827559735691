//! Fair queuing of mutating requests, the part of Kubernetes' API Priority and Fairness a
//! gateway needs to keep one busy client from making everyone else wait behind it.
//!
//! ```text
//!  mutating request of user U ─► exempt (system:masters)? ─► served at once
//!        │ a seat free and no one waiting ─► served
//!        │ else ─► U's queue (its flow) ─► full? ─► 429 TooManyRequests, naming U
//!        │                             └► waited longer than the limit? ─► 429
//!  a seat freed ─► the next flow in turn gets it, its oldest request first
//! ```
//!
//! Seats bound how many mutating requests one master has in flight at once; the flows
//! are served in turn, whatever the length of their queues, so a light writer waits for
//! one seat to be freed, not for a heavy writer's queue to drain. Reads and watches take no
//! seat (they are served from the watch cache).
//!
//! Owns the seats and the queues. It must not authenticate or authorize: the caller names
//! the user it already knows, and whether it is exempt.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;

/// How many mutating requests a master serves at once, and how long the others wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowControlConfig {
    /// Mutating requests in flight at once (kube-apiserver's
    /// `--max-mutating-requests-inflight`, whose default, 200, is this one's too); 0: no
    /// limit, nothing queued.
    pub seats: usize,
    /// Requests of one flow (user) waiting at most; more are refused.
    pub queue_length: usize,
    /// How long a request waits for a seat before it is refused.
    pub queue_wait: Duration,
}

impl Default for FlowControlConfig {
    fn default() -> Self {
        FlowControlConfig {
            seats: 200,
            queue_length: 512,
            queue_wait: Duration::from_secs(15),
        }
    }
}

/// Why a request got no seat: it is answered 429 Too Many Requests, with a Retry-After.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    /// The user's queue is full.
    #[error("too many requests: user {user:?} already has {waiting} mutating requests waiting on this master; try again later")]
    QueueFull {
        /// The user whose flow it is.
        user: String,
        /// How many of its requests are waiting.
        waiting: usize,
    },
    /// The request waited for a seat longer than the limit.
    #[error("too many requests: a mutating request of user {user:?} waited {waited:?} for a seat on this master; try again later")]
    WaitedTooLong {
        /// The user whose flow it is.
        user: String,
        /// How long it waited.
        waited: Duration,
    },
}

/// Seconds a throttled client is told to wait before trying again (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The seats and queues of one gateway.
#[derive(Debug)]
pub struct FlowControl {
    config: FlowControlConfig,
    queues: Mutex<Queues>,
    /// Requests refused (429) so far.
    rejected: AtomicU64,
    /// Requests that waited in a queue and then got a seat, so far.
    dispatched_after_wait: AtomicU64,
}

#[derive(Debug, Default)]
struct Queues {
    /// Seats no request holds; never above 0 while anyone waits.
    free: usize,
    /// The waiting requests of each flow, oldest first.
    flows: HashMap<Arc<str>, VecDeque<Waiter>>,
    /// The flows with waiting requests, in the order they get the next seats.
    turn: VecDeque<Arc<str>>,
    /// The id of the next waiter.
    next: u64,
}

impl Queues {
    /// Requests waiting in every flow.
    fn waiting(&self) -> usize {
        self.flows.values().map(VecDeque::len).sum()
    }
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    seat: oneshot::Sender<Seat>,
}

/// A held seat: freed, and given to the next flow in turn, when dropped.
#[derive(Debug)]
#[must_use = "the seat is freed when dropped"]
pub struct Seat {
    control: Option<Arc<FlowControl>>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(control) = self.control.take() {
            control.free_one();
        }
    }
}

impl FlowControl {
    /// Seats and queues as `config` says.
    pub fn new(config: FlowControlConfig) -> Arc<FlowControl> {
        Arc::new(FlowControl {
            config,
            queues: Mutex::new(Queues {
                free: config.seats,
                ..Queues::default()
            }),
            rejected: AtomicU64::new(0),
            dispatched_after_wait: AtomicU64::new(0),
        })
    }

    /// Requests refused so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// The figures a master's `/metrics` serves, named as kube-apiserver's
    /// `apiserver_flowcontrol_*`.
    pub fn prometheus_text(&self) -> String {
        let (waiting, executing) = {
            let queues = self.queues();
            (
                queues.waiting(),
                self.config.seats.saturating_sub(queues.free),
            )
        };
        crate::prometheus::prometheus_text(
            "apiserver_flowcontrol",
            &[
                (
                    "nominal_limit_seats",
                    "mutating requests served at once",
                    self.config.seats as u64,
                ),
                (
                    "current_executing_seats",
                    "seats held by mutating requests now",
                    executing as u64,
                ),
                (
                    "current_inqueue_requests",
                    "mutating requests waiting for a seat now",
                    waiting as u64,
                ),
                (
                    "dispatched_after_wait_requests_total",
                    "mutating requests that waited in a queue, then got a seat",
                    self.dispatched_after_wait.load(Ordering::Relaxed),
                ),
                (
                    "rejected_requests_total",
                    "mutating requests refused with 429 (a full queue, or waited too long)",
                    self.rejected(),
                ),
            ],
        )
    }

    /// The configuration.
    pub fn config(&self) -> FlowControlConfig {
        self.config
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests waiting for a seat now.
    pub fn waiting(&self) -> usize {
        self.queues().waiting()
    }

    /// A seat for a mutating request of `user`: at once when `exempt`, when there are no
    /// seats to count, or when one is free and no one waits; else once its flow's turn
    /// comes, within the wait limit.
    pub async fn seat(self: &Arc<Self>, user: &str, exempt: bool) -> Result<Seat, Throttled> {
        if exempt || self.config.seats == 0 {
            return Ok(Seat { control: None });
        }
        let (id, mut handed) = {
            let mut queues = self.queues();
            if queues.free > 0 {
                queues.free -= 1;
                return Ok(Seat {
                    control: Some(Arc::clone(self)),
                });
            }
            let waiting = queues.flows.get(user).map_or(0, VecDeque::len);
            if waiting >= self.config.queue_length {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Throttled::QueueFull {
                    user: user.to_owned(),
                    waiting,
                });
            }
            let id = queues.next;
            queues.next += 1;
            let (tx, rx) = oneshot::channel();
            let queues = &mut *queues;
            let flow = match queues.flows.get_key_value(user) {
                Some((name, _)) => Arc::clone(name),
                None => {
                    let name: Arc<str> = Arc::from(user);
                    queues.turn.push_back(Arc::clone(&name));
                    name
                }
            };
            queues
                .flows
                .entry(flow)
                .or_default()
                .push_back(Waiter { id, seat: tx });
            (id, rx)
        };
        // A request dropped while it waits (its caller went away) drops `handed`: a seat
        // already handed to it is then dropped too, which frees it for the next flow.
        let seat = match tokio::time::timeout(self.config.queue_wait, &mut handed).await {
            Ok(Ok(seat)) => Some(seat),
            // Not withdrawn: handed a seat just as the wait ended, which it takes.
            Ok(Err(_)) | Err(_) if !self.withdraw(user, id) => handed.try_recv().ok(),
            Ok(Err(_)) | Err(_) => None,
        };
        match seat {
            Some(seat) => {
                self.dispatched_after_wait.fetch_add(1, Ordering::Relaxed);
                Ok(seat)
            }
            None => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(Throttled::WaitedTooLong {
                    user: user.to_owned(),
                    waited: self.config.queue_wait,
                })
            }
        }
    }

    /// Takes waiter `id` out of `user`'s queue; whether it was still there.
    fn withdraw(&self, user: &str, id: u64) -> bool {
        let mut queues = self.queues();
        let Some(queue) = queues.flows.get_mut(user) else {
            return false;
        };
        let Some(position) = queue.iter().position(|w| w.id == id) else {
            return false;
        };
        queue.remove(position);
        if queue.is_empty() {
            queues.flows.remove(user);
            queues.turn.retain(|f| &**f != user);
        }
        true
    }

    /// Frees a seat: the next flow in turn gets it for its oldest request, or it stays free.
    fn free_one(self: Arc<Self>) {
        loop {
            let next = {
                let mut queues = self.queues();
                match next_waiter(&mut queues) {
                    Some(waiter) => waiter,
                    None => {
                        queues.free += 1;
                        return;
                    }
                }
            };
            let seat = Seat {
                control: Some(Arc::clone(&self)),
            };
            match next.seat.send(seat) {
                Ok(()) => return,
                // That request is gone: take the seat back (without freeing it twice)
                // and give it to the next.
                Err(mut seat) => {
                    seat.control = None;
                }
            }
        }
    }
}

/// The oldest request of the flow whose turn it is; the flow goes to the back of the turn
/// if it has more.
fn next_waiter(queues: &mut Queues) -> Option<Waiter> {
    while let Some(flow) = queues.turn.pop_front() {
        let Some(queue) = queues.flows.get_mut(&flow) else {
            continue;
        };
        let waiter = queue.pop_front();
        if queue.is_empty() {
            queues.flows.remove(&flow);
        } else {
            queues.turn.push_back(flow);
        }
        if waiter.is_some() {
            return waiter;
        }
    }
    None
}

#[cfg(test)]
#[path = "flow_control_test.rs"]
mod tests;
