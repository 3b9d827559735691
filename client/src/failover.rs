//! Failover across masters: which master to try next, and the retry loop every call
//! goes through.
//!
//! ```text
//!   call ─► order(now): current first, then healthy ones, then those backing off
//!              │
//!              ▼ attempt on master i (bounded by the attempt and total budgets)
//!   answer ───────────────────────────────► done (master i becomes current)
//!   not sent (connect failed, Unavailable) ► mark i unhealthy, next master
//!   in flight (connection broke, deadline) ► reads: next master
//!                                            writes: OutcomeUnknown
//!                                            creates: next master; AlreadyExists there
//!                                                     becomes OutcomeUnknown
//!   every master failed ───────────────────► pause, another round, until the budget ends:
//!                                            NoMasterAvailable listing each master
//! ```
//!
//! [`Health`] is the pure part (no clock of its own, no I/O) and is tested on its own;
//! [`Failover`] holds the channels and runs attempts. It must not interpret answers
//! beyond [`classify`]: what a call means is the caller's business.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use crate::error::{classify, ClientError, EndpointFailure, Failure};

/// The first back-off of a master that failed; it doubles per consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest back-off of a master.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first pause after a round where no master served; it doubles per round.
const FIRST_ROUND_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between rounds.
const MAX_ROUND_PAUSE: Duration = Duration::from_secs(1);

/// Whether a call may be sent again after it was sent and no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads (get, list, watch, status): always safe to send again.
    Read,
    /// Writes: sent again only when it is known the first one was not applied.
    Write,
    /// A create of a named object: sent again, since a second create cannot apply twice;
    /// AlreadyExists after an unknown outcome is reported as OutcomeUnknown, since the
    /// object may be ours or someone else's.
    Create,
}

#[derive(Debug, Clone, Default)]
struct EndpointHealth {
    /// Consecutive failures.
    failures: u32,
    /// Tried only after healthy masters until then.
    backing_off_until: Option<Instant>,
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
    /// those backing off, soonest recovered first. Every master appears once.
    pub(crate) fn order(&self, now: Instant) -> Vec<usize> {
        let count = self.endpoints.len();
        let rotation = (0..count).map(|k| (self.current + k) % count);
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

    /// The current master.
    #[cfg(test)]
    pub(crate) fn current(&self) -> usize {
        self.current
    }
}

/// The pause after the `round`-th round (from 0) in which no master served.
fn round_pause(round: u32) -> Duration {
    (FIRST_ROUND_PAUSE * (1u32 << round.min(8))).min(MAX_ROUND_PAUSE)
}

/// One master: its address for messages and its lazily connected channel.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// `host:port`, as error messages show it.
    pub(crate) address: String,
    /// The channel; it connects on first use and reconnects after a failure.
    pub(crate) channel: Channel,
}

/// Time budgets of a call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// All attempts of one call together.
    pub(crate) total: Duration,
    /// One attempt on one master.
    pub(crate) attempt: Duration,
}

/// The masters, their health and the retry loop.
pub(crate) struct Failover {
    endpoints: Vec<Endpoint>,
    health: Mutex<Health>,
    budget: Budget,
}

impl Failover {
    /// Failover over `endpoints` (at least one).
    pub(crate) fn new(endpoints: Vec<Endpoint>, budget: Budget) -> Failover {
        let health = Mutex::new(Health::new(endpoints.len()));
        Failover {
            endpoints,
            health,
            budget,
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
        let deadline = Instant::now() + self.budget.total;
        let mut last_failures: Vec<Option<String>> = vec![None; self.endpoints.len()];
        let mut unknown: Option<EndpointFailure> = None;
        let mut round = 0u32;
        'rounds: loop {
            let order = self.with_health(|h| h.order(Instant::now()));
            for i in order {
                let now = Instant::now();
                if now >= deadline {
                    break 'rounds;
                }
                let left = (deadline - now).min(self.budget.attempt);
                let endpoint = &self.endpoints[i];
                let outcome =
                    tokio::time::timeout(left, attempt(endpoint.channel.clone(), left)).await;
                let failure = match outcome {
                    Ok(Ok(answer)) => {
                        self.with_health(|h| h.succeeded(i));
                        return Ok((i, answer));
                    }
                    Ok(Err(status)) => classify(&status),
                    Err(_) => Failure::InFlight(format!("no answer within {left:?}")),
                };
                let message = match failure {
                    Failure::Answer(error) => {
                        self.with_health(|h| h.succeeded(i));
                        if let (Some(first), ClientError::AlreadyExists { .. }) =
                            (unknown.take(), &error)
                        {
                            tracing::warn!(endpoint = %endpoint.address, "{what}: AlreadyExists after an attempt with an unknown outcome");
                            return Err(ClientError::OutcomeUnknown {
                                endpoint: first.endpoint,
                                message: format!(
                                    "{}; a retry on {} found an object of that name, which may or may not be the one this call created",
                                    first.error, endpoint.address
                                ),
                            });
                        }
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
                        Idempotency::Create => {
                            unknown.get_or_insert(EndpointFailure {
                                endpoint: endpoint.address.clone(),
                                error: message.clone(),
                            });
                            message
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
            tokio::time::sleep(round_pause(round).min(deadline - now)).await;
            round = round.saturating_add(1);
        }
        if let Some(first) = unknown {
            return Err(ClientError::OutcomeUnknown {
                endpoint: first.endpoint,
                message: first.error,
            });
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
