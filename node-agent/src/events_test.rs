use std::sync::Mutex;

use async_trait::async_trait;
use rafter_proto::v1::Container;
use rafter_proto::Kind;
use tokio::sync::Semaphore;

use super::*;
use crate::api::{ApiError, ObjectEventStream, PodEventStream};

/// An API whose creates wait for a permit each, and which keeps what was created.
struct GatedApi {
    permits: Semaphore,
    created: Mutex<Vec<String>>,
}

impl GatedApi {
    /// An API that lets no create through until permits are added.
    fn closed() -> GatedApi {
        GatedApi {
            permits: Semaphore::new(0),
            created: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl ApiClient for GatedApi {
    async fn get(&self, _: Kind, _: &str, _: &str) -> Result<Object, ApiError> {
        unimplemented!("not used by events")
    }
    async fn create_token(
        &self,
        _: rafter_proto::api::TokenRequest,
    ) -> Result<rafter_proto::api::TokenResponse, ApiError> {
        unimplemented!("not used by events")
    }
    async fn create(&self, object: Object) -> Result<Object, ApiError> {
        self.permits.acquire().await.unwrap().forget();
        let Object::Event(event) = &object else {
            panic!("only events are created");
        };
        self.created.lock().unwrap().push(event.message.clone());
        Ok(object)
    }
    async fn update(&self, _: Object) -> Result<Object, ApiError> {
        unimplemented!("not used by events")
    }
    async fn update_status(&self, _: Object) -> Result<Object, ApiError> {
        unimplemented!("not used by events")
    }
    async fn delete_pod(&self, _: &str, _: &str, _: &str) -> Result<(), ApiError> {
        unimplemented!("not used by events")
    }
    async fn list_pods(&self, _: &str) -> Result<(Vec<Pod>, String), ApiError> {
        unimplemented!("not used by events")
    }
    fn watch_pods(&self, _: &str, _: &str) -> PodEventStream {
        unimplemented!("not used by events")
    }
    async fn list_all(&self, _: Kind) -> Result<(Vec<Object>, String), ApiError> {
        unimplemented!("not used by events")
    }
    fn watch_all(&self, _: Kind, _: &str) -> ObjectEventStream {
        unimplemented!("not used by events")
    }
}

fn pod() -> Pod {
    Pod {
        metadata: Some(ObjectMeta {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            ..Default::default()
        }),
        spec: Some(rafter_proto::v1::PodSpec {
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn created(api: &GatedApi, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = api.created.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} events written: {got:?}",
            got.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn recording_never_waits_for_the_api_and_events_are_written_in_order() {
    let api = Arc::new(GatedApi::closed());
    let (_stop, shutdown) = watch::channel(false);
    let (events, writer) = PodEvents::start(api.clone(), "node-1".into(), shutdown);
    for i in 0..5 {
        events.container(&pod(), "app", NORMAL, "Pulled", format!("event {i}"));
    }
    assert!(
        api.created.lock().unwrap().is_empty(),
        "the API has not let one write through yet"
    );
    api.permits.add_permits(5);
    let written = created(&api, 5).await;
    assert_eq!(
        written,
        (0..5).map(|i| format!("event {i}")).collect::<Vec<_>>()
    );
    drop(events);
    tokio::time::timeout(std::time::Duration::from_secs(10), writer)
        .await
        .expect("the writer ends with its last recorder")
        .unwrap();
}

#[tokio::test]
async fn a_full_queue_drops_new_events_and_keeps_the_queued_ones() {
    let api = Arc::new(GatedApi::closed());
    let (stop, shutdown) = watch::channel(false);
    let (events, writer) = PodEvents::start(api.clone(), "node-1".into(), shutdown);
    // The writer takes the first one and waits in the API; the queue then fills up.
    events.container(&pod(), "app", NORMAL, "Pulled", "first".into());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while events.queue.capacity() < QUEUE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never took the first event"
        );
        tokio::task::yield_now().await;
    }
    for i in 0..QUEUE + 10 {
        events.container(&pod(), "app", NORMAL, "Pulled", format!("queued {i}"));
    }
    api.permits.add_permits(QUEUE + 100);
    let written = created(&api, QUEUE + 1).await;
    assert_eq!(written[0], "first");
    assert_eq!(written[QUEUE], format!("queued {}", QUEUE - 1));
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), writer)
        .await
        .expect("the writer stops on shutdown")
        .unwrap();
    assert_eq!(
        api.created.lock().unwrap().len(),
        QUEUE + 1,
        "the events past the queue's bound were dropped"
    );
}
