//! Failover across masters: which master to try next, and the retry loop every call
//! goes through.
//!
//! ```text
//!   call ─► order(now): current first, then healthy ones, then those backing off
//!              │
//!              ▼ attempt on master i (bounded by the attempt and total budgets)
//!   answer ───────────────────────────────► done (master i becomes current)
//!   not sent (connect failed, Unavailable) ► mark i unhealthy, next master
//!   in flight (connection broke, deadline, ► reads: next master
//!     or i fell silent, see below)           writes (creates too): OutcomeUnknown
//!   every master failed ───────────────────► pause (a quarter of the time waited so
//!                                            far, 25 ms to 1 s), another round, until
//!                                            the budget ends: NoMasterAvailable
//! ```
//!
//! A silent master (a paused process, a black-holed link: its sockets stay open and
//! nothing comes back) is noticed from the client's own deadlines, not by waiting out
//! the attempt timeout:
//!
//! ```text
//!   attempt on i unanswered after probe_after (300 ms) ─► probe every master at once
//!        (Cluster.Status, each within probe_timeout, 500 ms)
//!   i answers its probe ──────────► i is alive, only slow: keep waiting, probe again
//!                                   later (twice the interval each time)
//!   i does not, another master does ► i is silent: the attempt is abandoned, i backs
//!                                   off and is left out of the rounds for 3 s (while
//!                                   another master is not silent too: an election's
//!                                   UNAVAILABLE rounds must not wait on it again), and
//!                                   open watches on i move to another master;
//!                                   a write is of unknown outcome, unless i never spoke
//!                                   on a connection that could carry it (`contact`):
//!                                   then it was not sent and goes to the next master
//!   nobody answers ───────────────► the whole cluster is slow: keep waiting
//! ```
//!
//! The pauses between rounds are proportional (a quarter of the time the call has
//! waited) rather than doubling: a doubling pause (50, 100, 200, 400 ms ...) made every
//! write in a leader election wait for the next step of the ladder, 750 ms after a
//! 500 ms election; a proportional one costs at most a quarter of the outage, and a
//! long outage is still asked about at most once a second.
//!
//! [`Health`] is the pure part (no clock of its own, no I/O) and is tested on its own;
//! [`Failover`] holds the channels and runs attempts. It must not interpret answers
//! beyond [`classify`]: what a call means is the caller's business.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use crate::contact::Contact;
use crate::error::{classify, ClientError, EndpointFailure, Failure};

/// The first back-off of a master that failed; it doubles per consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest back-off of a master.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a master found silent is left out of the rounds while another master is not.
/// A paused or black-holed master costs an attempt its probe time (800 ms by default), so
/// a call whose next masters answer `UNAVAILABLE` during an election must not spend that
/// again on it in the next round.
const SILENT_REST: Duration = Duration::from_secs(3);
/// The shortest pause after a round where no master served.
const MIN_ROUND_PAUSE: Duration = Duration::from_millis(25);
/// The longest pause between rounds.
const MAX_ROUND_PAUSE: Duration = Duration::from_secs(1);

/// Whether a call may be sent again after it was sent and no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads (get, list, watch, status): always safe to send again.
    Read,
    /// Writes, creates of named objects included: sent again only when it is known the
    /// first one was not applied. (A named create sent again is not harmless: if the
    /// first applied and someone deleted the object meanwhile, the second creates it
    /// again, and the history shows one acknowledged create applied twice.)
    Write,
}

#[derive(Debug, Clone, Default)]
struct EndpointHealth {
    /// Consecutive failures.
    failures: u32,
    /// Tried only after healthy masters until then.
    backing_off_until: Option<Instant>,
    /// Found silent: left out of the rounds until then, unless every master is.
    silent_until: Option<Instant>,
}

/// Which masters are healthy and which one is current. Pure: the caller passes `now`.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    endpoints: Vec<EndpointHealth>,
    current: usize,
}

impl Health {
    /// `count` healthy masters, the first one current.
    pub(crate) fn new(count: usize) -> Health {
        Health {
            endpoints: vec![EndpointHealth::default(); count],
            current: 0,
        }
    }

    /// The order to try masters in: the healthy ones starting at the current one, then
    /// those backing off, soonest recovered first. A master found silent lately is left
    /// out while any other is not; otherwise every master appears once.
    pub(crate) fn order(&self, now: Instant) -> Vec<usize> {
        let count = self.endpoints.len();
        let silent = |i: &usize| {
            self.endpoints[*i]
                .silent_until
                .is_some_and(|until| until > now)
        };
        let all_silent = (0..count).all(|i| silent(&i));
        let rotation = (0..count)
            .map(|k| (self.current + k) % count)
            .filter(|i| all_silent || !silent(i));
        let healthy = |i: &usize| {
            self.endpoints[*i]
                .backing_off_until
                .is_none_or(|until| until <= now)
        };
        let mut order: Vec<usize> = rotation.clone().filter(healthy).collect();
        let mut resting: Vec<usize> = rotation.filter(|i| !healthy(i)).collect();
        resting.sort_by_key(|i| self.endpoints[*i].backing_off_until);
        order.extend(resting);
        order
    }

    /// Master `i` answered: it is healthy and becomes current.
    pub(crate) fn succeeded(&mut self, i: usize) {
        if let Some(endpoint) = self.endpoints.get_mut(i) {
            *endpoint = EndpointHealth::default();
            self.current = i;
        }
    }

    /// Master `i` could not serve: it backs off (longer after each consecutive failure)
    /// and, if it was current, the next master becomes current.
    pub(crate) fn failed(&mut self, i: usize, now: Instant) {
        let count = self.endpoints.len();
        let Some(endpoint) = self.endpoints.get_mut(i) else {
            return;
        };
        endpoint.failures = endpoint.failures.saturating_add(1);
        let factor = 1u32 << endpoint.failures.saturating_sub(1).min(8);
        endpoint.backing_off_until = Some(now + (FIRST_BACKOFF * factor).min(MAX_BACKOFF));
        if self.current == i {
            self.current = (i + 1) % count;
        }
    }

    /// Master `i` fell silent (it answered neither the attempt nor a probe while another
    /// master did): it is left out of the rounds for [`SILENT_REST`]. Its back-off is
    /// still [`Health::failed`]'s.
    pub(crate) fn fell_silent(&mut self, i: usize, now: Instant) {
        if let Some(endpoint) = self.endpoints.get_mut(i) {
            endpoint.silent_until = Some(now + SILENT_REST);
        }
    }

    /// The current master.
    #[cfg(test)]
    pub(crate) fn current(&self) -> usize {
        self.current
    }
}

/// The pause after a round in which no master served, for a call that has waited
/// `waited` so far: a quarter of it, between [`MIN_ROUND_PAUSE`] and [`MAX_ROUND_PAUSE`].
/// The time a call loses after the cluster comes back is so at most a quarter of the
/// outage (plus 25 ms), and a long outage is still asked about at most once a second.
fn round_pause(waited: Duration) -> Duration {
    (waited / 4).clamp(MIN_ROUND_PAUSE, MAX_ROUND_PAUSE)
}

/// Asks one master whether it is alive (an answer of any kind within the time given:
/// even a refusal comes from a live process). Made by the [`Client`](crate::Client),
/// which knows the credentials.
/// It gets the master's index, its channel and the time the probe may take.
pub(crate) type Probe =
    Arc<dyn Fn(usize, Channel, Duration) -> BoxFuture<'static, Result<(), Status>> + Send + Sync>;

/// What probing every master said about master `i`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Master `i` answered its probe: it is alive, only slow.
    Alive,
    /// Master `i` did not answer, and the named master did: `i` is silent.
    Silent {
        /// A master that answered.
        other: usize,
    },
    /// Nobody answered: the whole cluster (or this machine) is slow, or every master is
    /// down; nothing is concluded.
    Undecided,
}

/// The verdict on master `i` from every master's probe result (`true`: it answered).
/// Pure.
pub(crate) fn verdict(i: usize, answered: &[bool]) -> Verdict {
    if answered.get(i).copied().unwrap_or(false) {
        return Verdict::Alive;
    }
    match answered.iter().position(|a| *a) {
        Some(other) => Verdict::Silent { other },
        None => Verdict::Undecided,
    }
}

/// One master: its address for messages and its lazily connected channel.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// `host:port`, as error messages show it.
    pub(crate) address: String,
    /// The channel; it connects on first use and reconnects after a failure.
    pub(crate) channel: Channel,
    /// What the master said on the channel's connections, when that tells an unsent
    /// request from a sent one (TLS endpoints, see `contact`).
    pub(crate) contact: Option<Arc<Contact>>,
}

/// Time budgets of a call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// All attempts of one call together.
    pub(crate) total: Duration,
    /// One attempt on one master.
    pub(crate) attempt: Duration,
    /// An attempt unanswered this long has every master probed (see the module doc).
    pub(crate) probe_after: Duration,
    /// How long a probe may take.
    pub(crate) probe_timeout: Duration,
    /// Test only: take an unknown outcome for "not sent" and send the write again
    /// ([`ClientOptions::testing_retry_unknown_outcomes`](crate::ClientOptions)).
    pub(crate) retry_unknown_outcomes: bool,
}

/// How one attempt ended when it did not end by itself.
enum Abandoned {
    /// No answer within the attempt's time.
    Timeout(Duration),
    /// The master fell silent (see the module doc); why, in words.
    Silent(String),
}

/// The masters, their health and the retry loop.
pub(crate) struct Failover {
    endpoints: Vec<Endpoint>,
    health: Mutex<Health>,
    budget: Budget,
    probe: Option<Probe>,
    /// Per master, a count of the times it was found silent: open watches on it follow
    /// it and move on when it changes.
    silenced: Vec<tokio::sync::watch::Sender<u64>>,
}

impl Failover {
    /// Failover over `endpoints` (at least one); `probe` asks one master whether it is
    /// alive (`None`: silent masters are noticed only by the transport's keepalive and
    /// the attempt timeout).
    pub(crate) fn new(endpoints: Vec<Endpoint>, budget: Budget, probe: Option<Probe>) -> Failover {
        let health = Mutex::new(Health::new(endpoints.len()));
        let silenced = endpoints
            .iter()
            .map(|_| tokio::sync::watch::Sender::new(0))
            .collect();
        Failover {
            endpoints,
            health,
            budget,
            probe,
            silenced,
        }
    }

    /// A receiver that changes whenever master `i` is found silent.
    pub(crate) fn silenced(&self, i: usize) -> tokio::sync::watch::Receiver<u64> {
        match self.silenced.get(i) {
            Some(sender) => sender.subscribe(),
            None => tokio::sync::watch::Sender::new(0).subscribe(),
        }
    }

    /// Probes every master at once, each within the probe timeout: the verdict on `i`.
    async fn probe_all(&self, probe: &Probe, i: usize) -> Verdict {
        let timeout = self.budget.probe_timeout;
        let asks = self.endpoints.iter().enumerate().map(|(k, endpoint)| {
            let ask = probe(k, endpoint.channel.clone(), timeout);
            async move { matches!(tokio::time::timeout(timeout, ask).await, Ok(Ok(()))) }
        });
        let answered = futures::future::join_all(asks).await;
        verdict(i, &answered)
    }

    /// Runs one attempt on master `i` for at most `left`, probing the masters while it
    /// is unanswered (see the module doc): its result, or why it was abandoned.
    async fn watched<T, Fut>(
        &self,
        i: usize,
        left: Duration,
        attempt: Fut,
    ) -> Result<Result<T, Status>, Abandoned>
    where
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let deadline = started + left;
        tokio::pin!(attempt);
        let probe = match &self.probe {
            Some(probe) if self.endpoints.len() > 1 => probe,
            _ => {
                return tokio::time::timeout_at(deadline, attempt)
                    .await
                    .map_err(|_| Abandoned::Timeout(left))
            }
        };
        let mut interval = self.budget.probe_after;
        loop {
            let next_probe = Instant::now() + interval;
            tokio::select! {
                answer = &mut attempt => return Ok(answer),
                () = tokio::time::sleep_until(deadline) => return Err(Abandoned::Timeout(left)),
                () = tokio::time::sleep_until(next_probe) => {}
            }
            let verdict = tokio::select! {
                answer = &mut attempt => return Ok(answer),
                () = tokio::time::sleep_until(deadline) => return Err(Abandoned::Timeout(left)),
                verdict = self.probe_all(probe, i) => verdict,
            };
            if let Verdict::Silent { other } = verdict {
                return Err(Abandoned::Silent(format!(
                    "no answer for {:?}, nor to a status probe within {:?}, while {} answered its probe",
                    started.elapsed(),
                    self.budget.probe_timeout,
                    self.address(other)
                )));
            }
            interval = interval.saturating_mul(2);
        }
    }

    fn with_health<T>(&self, f: impl FnOnce(&mut Health) -> T) -> T {
        let mut health = match self.health.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut health)
    }

    /// The address of master `i`.
    pub(crate) fn address(&self, i: usize) -> &str {
        self.endpoints.get(i).map_or("?", |e| e.address.as_str())
    }

    /// Marks master `i` as unable to serve (a broken watch stream, say).
    pub(crate) fn mark_failed(&self, i: usize) {
        self.with_health(|h| h.failed(i, Instant::now()));
    }

    /// Tells open watches on master `i` that it fell silent, so that they move on (the
    /// failed attempt marks it failed like any other).
    fn notify_silent(&self, i: usize) {
        if let Some(sender) = self.silenced.get(i) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Runs `attempt` on masters until one answers, following the module's rules.
    /// `attempt` gets the master's channel and the time left for this attempt; it is
    /// cancelled when that time is over. Returns the answer and which master gave it.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        what: &str,
        idempotency: Idempotency,
        mut attempt: F,
    ) -> Result<(usize, T), ClientError>
    where
        F: FnMut(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let deadline = started + self.budget.total;
        let mut last_failures: Vec<Option<String>> = vec![None; self.endpoints.len()];
        'rounds: loop {
            let order = self.with_health(|h| h.order(Instant::now()));
            for i in order {
                let now = Instant::now();
                if now >= deadline {
                    break 'rounds;
                }
                let left = (deadline - now).min(self.budget.attempt);
                let endpoint = &self.endpoints[i];
                let seen = endpoint.contact.as_ref().map(|c| c.seen());
                let outcome = self
                    .watched(i, left, attempt(endpoint.channel.clone(), left))
                    .await;
                let failure = match outcome {
                    Ok(Ok(answer)) => {
                        self.with_health(|h| h.succeeded(i));
                        return Ok((i, answer));
                    }
                    Ok(Err(status)) => classify(&status),
                    Err(Abandoned::Timeout(left)) => {
                        Failure::InFlight(format!("no answer within {left:?}"))
                    }
                    Err(Abandoned::Silent(why)) => {
                        tracing::info!(endpoint = %endpoint.address, "{what}: the master fell silent: {why}");
                        self.with_health(|h| h.fell_silent(i, Instant::now()));
                        self.notify_silent(i);
                        Failure::InFlight(format!("the master fell silent: {why}"))
                    }
                };
                let never_spoke = match (&endpoint.contact, seen) {
                    (Some(contact), Some(seen)) => contact.silent_since(seen),
                    _ => false,
                };
                let failure = match failure {
                    // No connection that could carry the request was ever answered.
                    Failure::InFlight(message) if never_spoke => Failure::NotSent(format!(
                        "{message} (it never answered the connection: the request was not sent)"
                    )),
                    Failure::InFlight(message) if self.budget.retry_unknown_outcomes => {
                        Failure::NotSent(message)
                    }
                    other => other,
                };
                let message = match failure {
                    // The master is well, only busy: wait as it asks, then send it again.
                    Failure::Answer(ClientError::TooManyRequests {
                        message,
                        retry_after,
                    }) => {
                        self.with_health(|h| h.succeeded(i));
                        let now = Instant::now();
                        if now + retry_after >= deadline {
                            return Err(ClientError::TooManyRequests {
                                message,
                                retry_after,
                            });
                        }
                        tracing::debug!(endpoint = %endpoint.address, %message, ?retry_after, "{what}: throttled; sending it again");
                        tokio::time::sleep(retry_after).await;
                        continue 'rounds;
                    }
                    Failure::Answer(error) => {
                        self.with_health(|h| h.succeeded(i));
                        return Err(error);
                    }
                    Failure::NotSent(message) => message,
                    Failure::InFlight(message) => match idempotency {
                        Idempotency::Read => message,
                        Idempotency::Write => {
                            self.with_health(|h| h.failed(i, Instant::now()));
                            return Err(ClientError::OutcomeUnknown {
                                endpoint: endpoint.address.clone(),
                                message,
                            });
                        }
                    },
                };
                tracing::debug!(endpoint = %endpoint.address, error = %message, "{what}: trying another master");
                self.with_health(|h| h.failed(i, Instant::now()));
                last_failures[i] = Some(message);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let pause = round_pause(now - started).mul_f64(rand::thread_rng().gen_range(0.8..1.2));
            tokio::time::sleep(pause.min(deadline - now)).await;
        }
        let attempts = last_failures
            .into_iter()
            .enumerate()
            .map(|(i, error)| EndpointFailure {
                endpoint: self.endpoints[i].address.clone(),
                error: error.unwrap_or_else(|| "not tried before the time ran out".to_owned()),
            })
            .collect();
        tracing::warn!("{what}: no master could serve the request");
        Err(ClientError::NoMasterAvailable { attempts })
    }
}

#[cfg(test)]
#[path = "failover_test.rs"]
mod tests;
