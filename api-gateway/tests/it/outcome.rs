//! At-most-once writes through real gRPC and the client library: a write the store
//! applied but whose outcome it then does not know reaches the client as
//! `OutcomeUnknown` after exactly one attempt, never sent again to another master; a
//! write the store refused before applying it is sent to the next master.

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

/// The in-memory store, with a switch that turns write answers into faults and a count
/// of the writes that reached it.
struct Faulty {
    inner: Arc<MemKv>,
    mode: AtomicU8,
    writes: AtomicUsize,
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
            APPLY_THEN_UNKNOWN => {
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
