//! Fair queuing of mutating requests through real gRPC and TLS, over a store whose writes
//! the test holds: a held seat makes a user's next write wait in its queue, a full queue
//! is refused with a 429 that names the user, another user's write waits in a queue of its
//! own, reads and system:masters are never queued, and the client library sends a
//! throttled write again once told to.

use std::sync::Arc;
use std::time::Duration;

use api_gateway::testing::MemKv;
use api_gateway::{EventStream, FlowControl, FlowControlConfig, KvStore, ServeOptions, StoreError};
use raft_store::kv::{KeyRange, KvResponse, Op, RangeRequest, RangeResponse};
use rafter_client::{Client, ClientError, ResolvedConfig};
use rafter_proto::api::{self, ObjectKey};
use rafter_proto::well_known::TOO_MANY_REQUESTS_METADATA;
use rafter_proto::{parse_object, Kind, ReadConsistency};
use tokio::sync::watch;
use tonic::Code;

use crate::support::{start_on, until_allowed, Client as Grpc, Gateway, ADMIN_TOKEN, JANE_TOKEN};

/// A store whose writes wait while it is closed, counting the waiting ones.
struct Gated {
    inner: Arc<MemKv>,
    open: watch::Sender<bool>,
    held: watch::Sender<usize>,
}

#[async_trait::async_trait]
impl KvStore for Gated {
    async fn range(
        &self,
        request: RangeRequest,
        consistency: ReadConsistency,
    ) -> Result<RangeResponse, StoreError> {
        self.inner.range(request, consistency).await
    }

    async fn write(&self, op: Op, fence: Option<u64>) -> Result<KvResponse, StoreError> {
        if !*self.open.borrow() {
            let mut open = self.open.subscribe();
            self.held.send_modify(|n| *n += 1);
            let _ = open.wait_for(|o| *o).await;
            self.held.send_modify(|n| *n -= 1);
        }
        self.inner.write(op, fence).await
    }

    async fn watch(&self, range: KeyRange, from: u64) -> Result<EventStream, StoreError> {
        self.inner.watch(range, from).await
    }
}

/// A gateway with one seat and `queue_length` places per user over a [`Gated`] store.
async fn gateway(queue_length: usize) -> (Gateway<Gated>, Arc<Gated>, Arc<FlowControl>) {
    let config = FlowControlConfig {
        seats: 1,
        queue_length,
        queue_wait: Duration::from_secs(30),
    };
    let inner = Arc::new(MemKv::new().unwrap());
    let gated = Arc::new(Gated {
        inner: inner.clone(),
        open: watch::channel(true).0,
        held: watch::channel(0).0,
    });
    let control = FlowControl::new(config);
    let gateway = start_on(
        gated.clone(),
        inner,
        ServeOptions {
            flow_control: Some(control.clone()),
            ..ServeOptions::default()
        },
    )
    .await;
    (gateway, gated, control)
}

fn config_map(name: &str) -> api::CreateRequest {
    let yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata: {{a: b}}\n");
    api::CreateRequest {
        object: Some(parse_object(&yaml, "test").unwrap().into()),
        dry_run: false,
        field_manager: Default::default(),
    }
}

/// Sends a create on its own task.
fn spawn_create(
    mut client: Grpc,
    name: &str,
) -> tokio::task::JoinHandle<Result<(), tonic::Status>> {
    let request = config_map(name);
    tokio::spawn(async move { client.create(request).await.map(drop) })
}

/// Waits until `f` holds, for at most 10 s.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn held_writes(gated: &Gated, n: usize) {
    let mut held = gated.held.subscribe();
    tokio::time::timeout(Duration::from_secs(10), held.wait_for(|h| *h == n))
        .await
        .unwrap_or_else(|_| panic!("{n} writes held by the store"))
        .unwrap();
}

#[tokio::test]
async fn a_busy_user_queues_and_is_refused_alone_while_others_wait_their_turn() {
    let (gateway, gated, control) = gateway(1).await;
    gateway.grant("edit", "jane", "default").await;
    gateway.grant("edit", "bob", "default").await;
    let jane = gateway.client(Some(JANE_TOKEN)).await;
    let bob = gateway.client_as("bob", &[]).await;
    until_allowed(|| {
        let mut jane = jane.clone();
        async move { jane.create(config_map("warm-jane")).await }
    })
    .await
    .unwrap();
    until_allowed(|| {
        let mut bob = bob.clone();
        async move { bob.create(config_map("warm-bob")).await }
    })
    .await
    .unwrap();

    gated.open.send_replace(false);
    // Jane's first write holds the one seat (in the store); her second waits in her queue.
    let first = spawn_create(jane.clone(), "jane-1");
    held_writes(&gated, 1).await;
    let second = spawn_create(jane.clone(), "jane-2");
    until("jane's second write in her queue", || {
        control.waiting() == 1
    })
    .await;

    // Her queue is full: her third is refused, naming her, with the seconds to wait.
    let refused = jane
        .clone()
        .create(config_map("jane-3"))
        .await
        .expect_err("her queue is full");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("\"jane\""),
        "{}",
        refused.message()
    );
    assert_eq!(
        refused
            .metadata()
            .get(TOO_MANY_REQUESTS_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Bob's write waits in a queue of his own; reads take no seat; the admin takes none.
    let bobs = spawn_create(bob.clone(), "bob-1");
    until("bob's write in his queue", || control.waiting() == 2).await;
    let read = jane
        .clone()
        .get(api::GetRequest {
            key: Some(ObjectKey {
                kind: "ConfigMap".into(),
                namespace: "default".into(),
                name: "warm-jane".into(),
            }),
            ..Default::default()
        })
        .await;
    assert!(read.is_ok(), "a read waits for no seat: {read:?}");
    let admins = spawn_create(gateway.client(Some(ADMIN_TOKEN)).await, "admin-1");
    held_writes(&gated, 2).await;

    gated.open.send_replace(true);
    for (name, task) in [
        ("jane-1", first),
        ("jane-2", second),
        ("bob-1", bobs),
        ("admin-1", admins),
    ] {
        let result = task.await.unwrap();
        assert!(result.is_ok(), "{name}: {result:?}");
    }
    assert_eq!(control.rejected(), 1, "only jane-3");
    assert_eq!(control.waiting(), 0);
    let text = control.prometheus_text();
    assert!(
        text.contains("apiserver_flowcontrol_rejected_requests_total 1"),
        "{text}"
    );
    assert!(
        text.contains("apiserver_flowcontrol_dispatched_after_wait_requests_total 2"),
        "{text}"
    );
}

#[tokio::test]
async fn the_client_library_sends_a_throttled_write_again_after_the_wait_it_is_told() {
    let (gateway, gated, control) = gateway(0).await;
    gateway.grant("edit", "jane", "default").await;
    let jane = gateway.client(Some(JANE_TOKEN)).await;
    until_allowed(|| {
        let mut jane = jane.clone();
        async move { jane.create(config_map("warm")).await }
    })
    .await
    .unwrap();
    let library = Client::connect(ResolvedConfig {
        context: String::new(),
        endpoints: vec![gateway.endpoint.clone()],
        ca_pem: Some(gateway.ca.cert_pem().to_owned()),
        identity: None,
        token: Some(JANE_TOKEN.to_owned()),
        namespace: "default".into(),
        insecure: false,
    })
    .await
    .unwrap();

    gated.open.send_replace(false);
    let holder = spawn_create(jane.clone(), "holder");
    held_writes(&gated, 1).await;
    let object = parse_object(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: retried, namespace: default}\n",
        "test",
    )
    .unwrap();
    let retried = tokio::spawn(async move { library.create(object).await });
    until("the library's write refused once", || {
        control.rejected() >= 1
    })
    .await;
    assert!(!retried.is_finished(), "a 429 is not the library's answer");
    gated.open.send_replace(true);
    holder.await.unwrap().unwrap();
    let created: Result<_, ClientError> = retried.await.unwrap();
    assert!(created.is_ok(), "{created:?}");
    let stored = gateway
        .registry
        .get(
            Kind::ConfigMap,
            "default",
            "retried",
            ReadConsistency::Linearizable,
        )
        .await;
    assert!(stored.is_ok(), "{stored:?}");
}
