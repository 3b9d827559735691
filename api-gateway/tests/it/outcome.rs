//! At-most-once writes through real gRPC and the client library: a write the store
//! applied but whose outcome it then does not know reaches the client as
//! `OutcomeUnknown` after exactly one attempt, never sent again to another master; a
//! write the store refused before applying it is sent to the next master. The
//! at-most-once check (objects stored ≤ creates issued, and objects stored − creates
//! acknowledged ≤ creates of unknown outcome) holds for the client and catches a client
//! built to resend writes of unknown outcome (`testing_retry_unknown_outcomes`).

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use api_gateway::testing::MemKv;
use api_gateway::{EventStream, KvStore, StoreError};
use raft_store::kv::{KeyRange, KvResponse, Op, RangeRequest, RangeResponse};
use rafter_client::{ClientError, PatchType};
use rafter_proto::{parse_object, Kind, ReadConsistency};

use crate::masters::Masters;

/// Writes pass.
const PASS: u8 = 0;
/// Writes are applied, then answered as of unknown outcome (a discarded log entry's
/// twin that did commit, a forwarded write whose reply was lost).
const APPLY_THEN_UNKNOWN: u8 = 1;
/// Writes are refused before they are applied (no leader).
const REFUSE: u8 = 2;
/// Every other write (the first, the third ...) is applied and answered as of unknown
/// outcome; the others pass.
const EVERY_OTHER_UNKNOWN: u8 = 3;

/// The in-memory store, with a switch that turns write answers into faults and a count
/// of the writes that reached it.
struct Faulty {
    inner: Arc<MemKv>,
    mode: AtomicU8,
    writes: AtomicUsize,
    /// Writes seen in [`EVERY_OTHER_UNKNOWN`] mode.
    sequence: AtomicUsize,
}

#[async_trait::async_trait]
impl KvStore for Faulty {
    async fn range(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<RangeResponse, StoreError> {
        self.inner.range(request, consistency).await
    }

    async fn write(&self, op: Op, fence: Option<u64>) -> Result<KvResponse, StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            PASS => self.inner.write(op, fence).await,
            EVERY_OTHER_UNKNOWN if self.sequence.fetch_add(1, Ordering::SeqCst) % 2 == 1 => {
                self.inner.write(op, fence).await
            }
            APPLY_THEN_UNKNOWN | EVERY_OTHER_UNKNOWN => {
                self.writes.fetch_add(1, Ordering::SeqCst);
                self.inner.write(op, fence).await?;
                Err(StoreError::OutcomeUnknown(
                    "the entry was discarded when another leader took over".to_owned(),
                ))
            }
            _ => {
                self.writes.fetch_add(1, Ordering::SeqCst);
                Err(StoreError::Unavailable("no leader".to_owned()))
            }
        }
    }

    async fn watch(&self, range: KeyRange, from: u64) -> Result<EventStream, StoreError> {
        self.inner.watch(range, from).await
    }
}

async fn start() -> (Masters, Arc<Faulty>) {
    let store = Arc::new(MemKv::new().unwrap());
    let faulty = Arc::new(Faulty {
        inner: store.clone(),
        mode: AtomicU8::new(PASS),
        writes: AtomicUsize::new(0),
        sequence: AtomicUsize::new(0),
    });
    (Masters::start_over(3, store, faulty.clone()).await, faulty)
}

fn generated() -> rafter_proto::Object {
    parse_object(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: gen-\ndata:\n  value: '1'\n",
        "test",
    )
    .unwrap()
}

#[tokio::test]
async fn a_write_of_unknown_outcome_is_sent_once_and_reported_as_such() {
    let (masters, store) = start().await;
    let client = masters.client().await;
    let named = parse_object(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: counted\ndata:\n  value: '0'\n",
        "test",
    )
    .unwrap();
    client.create(named).await.unwrap();

    store.mode.store(APPLY_THEN_UNKNOWN, Ordering::SeqCst);
    let error = client.create(generated()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::OutcomeUnknown { .. }),
        "{error}"
    );
    assert_eq!(
        store.writes.swap(0, Ordering::SeqCst),
        1,
        "a generateName create is sent once"
    );

    let patch = serde_json::json!({"data": {"value": "2"}});
    let error = client
        .patch(
            Kind::ConfigMap,
            "default",
            "counted",
            PatchType::Merge,
            &patch,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::OutcomeUnknown { .. }),
        "{error}"
    );
    assert_eq!(
        store.writes.swap(0, Ordering::SeqCst),
        1,
        "a patch without resourceVersion is sent once"
    );

    store.mode.store(PASS, Ordering::SeqCst);
    let listed = client
        .list(Kind::ConfigMap, Some("default"), &Default::default())
        .await
        .unwrap();
    let generated = listed
        .items
        .iter()
        .filter(|o| o.metadata().name.starts_with("gen-"))
        .count();
    assert_eq!(generated, 1, "the create was applied, once");
}

#[tokio::test]
async fn a_write_refused_before_it_was_applied_is_sent_to_the_next_master() {
    let (masters, store) = start().await;
    let client = masters.client().await;
    store.mode.store(REFUSE, Ordering::SeqCst);
    let error = client.create(generated()).await.unwrap_err();
    assert!(
        matches!(error, ClientError::NoMasterAvailable { .. }),
        "{error}"
    );
    assert!(
        store.writes.load(Ordering::SeqCst) >= 3,
        "every master was tried: {}",
        store.writes.load(Ordering::SeqCst)
    );
}

/// What a run of `generateName` creates did: as the client saw it, and as the store
/// holds it afterwards.
#[derive(Debug, Default)]
struct Tally {
    issued: usize,
    acknowledged: usize,
    unknown: usize,
    stored: usize,
}

/// The at-most-once check: no create applied twice (objects stored ≤ creates issued),
/// and every stored object not acknowledged is one the client was told may have been
/// applied (stored − acknowledged ≤ unknown).
fn at_most_once(tally: &Tally) -> Result<(), String> {
    if tally.stored > tally.issued {
        return Err(format!(
            "{} objects from {} creates: a create was applied more than once",
            tally.stored, tally.issued
        ));
    }
    let unacknowledged = tally.stored.saturating_sub(tally.acknowledged);
    if unacknowledged > tally.unknown {
        return Err(format!(
            "{unacknowledged} stored objects were not acknowledged, and only {} creates were reported of unknown outcome",
            tally.unknown
        ));
    }
    Ok(())
}

/// Issues `count` generateName creates through `client` against a store that answers
/// every other write as of unknown outcome after applying it, and tallies them.
async fn creates_under_unknown_outcomes(options: rafter_client::ClientOptions) -> Tally {
    let (masters, store) = start().await;
    let client = rafter_client::Client::connect_with(
        masters.config(Some(crate::masters::ADMIN_TOKEN)),
        options,
    )
    .await
    .unwrap();
    store.mode.store(EVERY_OTHER_UNKNOWN, Ordering::SeqCst);
    let mut tally = Tally::default();
    for _ in 0..10 {
        tally.issued += 1;
        match client.create(generated()).await {
            Ok(_) => tally.acknowledged += 1,
            Err(ClientError::OutcomeUnknown { .. }) => tally.unknown += 1,
            Err(e) => panic!("a create failed otherwise: {e}"),
        }
    }
    store.mode.store(PASS, Ordering::SeqCst);
    tally.stored = client
        .list(Kind::ConfigMap, Some("default"), &Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|o| o.metadata().name.starts_with("gen-"))
        .count();
    tally
}

#[tokio::test]
async fn generate_name_creates_hold_at_most_once_when_outcomes_are_unknown() {
    let tally = creates_under_unknown_outcomes(crate::masters::quick()).await;
    assert!(tally.unknown >= 1, "the faults happened: {tally:?}");
    assert_eq!(
        tally.stored,
        tally.acknowledged + tally.unknown,
        "{tally:?}"
    );
    at_most_once(&tally).unwrap();
}

#[tokio::test]
async fn the_at_most_once_check_catches_a_client_that_resends_unknown_outcomes() {
    let broken = rafter_client::ClientOptions {
        testing_retry_unknown_outcomes: true,
        ..crate::masters::quick()
    };
    let tally = creates_under_unknown_outcomes(broken).await;
    let caught = at_most_once(&tally).expect_err("the broken client must fail the check");
    assert!(caught.contains("more than once"), "{caught}: {tally:?}");
}
