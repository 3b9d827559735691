//! Services and v1 Endpoints in every namespace, followed by list + watch into a
//! [`ServiceState`] and handed to a [`ServiceSink`] after each burst of changes (coalesced
//! for a debounce), with retries of failed syncs. The node proxy and cluster DNS are sinks.
//!
//! ```text
//!   list Services ─► watch from rv ─┐   (error / Expired ─► list again after a pause)
//!   list Endpoints ─► watch from rv ┤
//!                                   ▼
//!                 ServiceState ── change ─► sink.sync(state) at now + debounce
//!                                                 │ failure: log, retry after a back-off
//!   shutdown ─► sink.stop()
//! ```
//!
//! It syncs only once both kinds are listed (a half-known state would drop live Services).
//! Owns the watching and its timing; it must not interpret Services (the sinks do).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use rafter_proto::{Kind, Object};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

use crate::api::{ApiClient, ApiError, ObjectEvent, ObjectEventStream};
use crate::proxy::ServiceState;

/// The first pause before a failed sync is retried (doubling up to [`MAX_RETRY`]).
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest pause between retries of a failing sync.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// The pause before a failed list or an ended watch is listed again.
const RELIST_PAUSE: Duration = Duration::from_millis(500);

/// What is done with the Services and Endpoints each time they changed.
#[async_trait]
pub(crate) trait ServiceSink: Send {
    /// A name for logs (`proxy`, `dns`).
    fn name(&self) -> &'static str;
    /// Brings the sink in line with `state`; an error is logged and the sync retried.
    async fn sync(&mut self, state: &ServiceState) -> Result<(), String>;
    /// Undoes what the sink set up, at shutdown.
    async fn stop(&mut self);
}

/// One watched kind: its stream, and when to list it again if it has none.
struct Watched {
    kind: Kind,
    stream: Option<ObjectEventStream>,
    listed: bool,
    relist_at: Instant,
}

impl Watched {
    fn new(kind: Kind) -> Watched {
        Watched {
            kind,
            stream: None,
            listed: false,
            relist_at: Instant::now(),
        }
    }
}

/// Follows Services and Endpoints into `sink` until `shutdown`, then stops the sink.
pub(crate) async fn follow(
    api: Arc<dyn ApiClient>,
    debounce: Duration,
    sink: &mut dyn ServiceSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = ServiceState::default();
    let mut watched = [Watched::new(Kind::Service), Watched::new(Kind::Endpoints)];
    let mut sync_at: Option<Instant> = None;
    let mut retry = FIRST_RETRY;
    let name = sink.name();
    loop {
        let now = Instant::now();
        for w in watched.iter_mut() {
            if w.stream.is_none() && now >= w.relist_at {
                match api.list_all(w.kind).await {
                    Ok((objects, rv)) => {
                        replace(&mut state, w.kind, objects);
                        w.listed = true;
                        w.stream = Some(api.watch_all(w.kind, &rv));
                        sync_at.get_or_insert(Instant::now() + debounce);
                    }
                    Err(e) => {
                        warn!(sink = name, kind = w.kind.name(), error = %e, "cannot list; retrying");
                        w.relist_at = Instant::now() + RELIST_PAUSE;
                    }
                }
            }
        }
        let ready = watched.iter().all(|w| w.listed);
        let relist_at = watched
            .iter()
            .filter(|w| w.stream.is_none())
            .map(|w| w.relist_at)
            .min();
        let [services, endpoints] = &mut watched;
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            event = next_event(&mut services.stream), if services.stream.is_some() => {
                if handle(&mut state, services, event, name) {
                    sync_at.get_or_insert(Instant::now() + debounce);
                }
            }
            event = next_event(&mut endpoints.stream), if endpoints.stream.is_some() => {
                if handle(&mut state, endpoints, event, name) {
                    sync_at.get_or_insert(Instant::now() + debounce);
                }
            }
            _ = sleep_until(sync_at), if ready && sync_at.is_some() => {
                sync_at = None;
                match sink.sync(&state).await {
                    Ok(()) => retry = FIRST_RETRY,
                    Err(e) => {
                        warn!(sink = name, error = %e, retry_in = ?retry, "sync failed; nothing was changed");
                        sync_at = Some(Instant::now() + retry);
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                }
            }
            _ = sleep_until(relist_at), if relist_at.is_some() => {}
        }
    }
    sink.stop().await;
}

fn key_of(object: &Object) -> (String, String) {
    let meta = object.metadata();
    (meta.namespace.clone(), meta.name.clone())
}

/// Replaces every object of `kind` in `state` with `objects` (after a list).
fn replace(state: &mut ServiceState, kind: Kind, objects: Vec<Object>) {
    match kind {
        Kind::Service => state.services.clear(),
        _ => state.endpoints.clear(),
    }
    for object in objects {
        upsert(state, object);
    }
}

fn upsert(state: &mut ServiceState, object: Object) {
    let key = key_of(&object);
    match object {
        Object::Service(s) => {
            state.services.insert(key, s);
        }
        Object::Endpoints(e) => {
            state.endpoints.insert(key, e);
        }
        _ => {}
    }
}

/// Applies one watch event; true when the state changed.
fn handle(
    state: &mut ServiceState,
    watched: &mut Watched,
    event: Option<Result<ObjectEvent, ApiError>>,
    sink: &str,
) -> bool {
    match event {
        Some(Ok(ObjectEvent::Upsert(object))) => {
            upsert(state, *object);
            true
        }
        Some(Ok(ObjectEvent::Deleted(object))) => {
            let key = key_of(&object);
            match object.kind() {
                Kind::Service => state.services.remove(&key).is_some(),
                _ => state.endpoints.remove(&key).is_some(),
            }
        }
        Some(Err(e)) => {
            warn!(sink, kind = watched.kind.name(), error = %e, "watch ended; listing again");
            watched.stream = None;
            watched.relist_at = Instant::now() + RELIST_PAUSE;
            false
        }
        None => {
            watched.stream = None;
            watched.relist_at = Instant::now() + RELIST_PAUSE;
            false
        }
    }
}

async fn next_event(
    stream: &mut Option<ObjectEventStream>,
) -> Option<Result<ObjectEvent, ApiError>> {
    match stream.as_mut() {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
