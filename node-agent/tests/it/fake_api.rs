//! A scripted fake API for the agent (style #12): pods and other objects in memory, a
//! revision counter, watches over a broadcast channel, and faults to switch on — list
//! calls that fail, watches that end with Expired — with a count of the calls made.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use node_agent::{ApiClient, ApiError, ObjectEventStream, PodEvent, PodEventStream};
use rafter_proto::v1::Pod;
use rafter_proto::{Kind, Object};
use tokio::sync::broadcast;

#[derive(Default)]
struct State {
    revision: u64,
    objects: BTreeMap<(String, String, String), Object>,
}

pub struct FakeApi {
    state: Mutex<State>,
    events: broadcast::Sender<(u64, PodEvent)>,
    /// The next this many `list_pods` calls fail.
    pub failing_lists: AtomicU32,
    /// The next this many watches end at once with Expired.
    pub expiring_watches: AtomicU32,
    pub list_calls: AtomicU32,
}

fn key(kind: Kind, ns: &str, name: &str) -> (String, String, String) {
    (kind.name().to_owned(), ns.to_owned(), name.to_owned())
}

fn node_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .map(|s| s.node_name.as_str())
        .unwrap_or("")
}

impl FakeApi {
    pub fn new() -> FakeApi {
        FakeApi {
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
            failing_lists: AtomicU32::new(0),
            expiring_watches: AtomicU32::new(0),
            list_calls: AtomicU32::new(0),
        }
    }

    /// Stores `object` at the next revision (a new uid when it has none).
    pub fn put(&self, mut object: Object) -> Object {
        let mut st = self.state.lock().unwrap();
        st.revision += 1;
        let rev = st.revision;
        let kind = object.kind();
        let meta = object.metadata_mut();
        if meta.uid.is_empty() {
            meta.uid = format!("uid-{rev}");
        }
        meta.resource_version = rev.to_string();
        let k = key(kind, &meta.namespace, &meta.name);
        st.objects.insert(k, object.clone());
        if let Object::Pod(p) = &object {
            let _ = self
                .events
                .send((rev, PodEvent::Upsert(Box::new(p.clone()))));
        }
        object
    }

    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        match self
            .state
            .lock()
            .unwrap()
            .objects
            .get(&key(Kind::Pod, ns, name))
        {
            Some(Object::Pod(p)) => Some(p.clone()),
            _ => None,
        }
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl ApiClient for FakeApi {
    async fn create_token(
        &self,
        request: rafter_proto::api::TokenRequest,
    ) -> Result<rafter_proto::api::TokenResponse, ApiError> {
        self.get(
            Kind::ServiceAccount,
            &request.namespace,
            &request.service_account,
        )
        .await?;
        Ok(rafter_proto::api::TokenResponse {
            token: format!(
                "fake-token-{}-{}-{}",
                request.namespace, request.service_account, request.bound_pod_name
            ),
            expiration_timestamp: rafter_proto::Timestamp::now()
                .plus_seconds(request.expiration_seconds.max(600))
                .to_rfc3339(),
        })
    }

    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object, ApiError> {
        let st = self.state.lock().unwrap();
        st.objects
            .get(&key(kind, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("{kind} {namespace}/{name}")))
    }

    async fn create(&self, object: Object) -> Result<Object, ApiError> {
        let meta = object.metadata();
        if self
            .get(object.kind(), &meta.namespace, &meta.name)
            .await
            .is_ok()
        {
            return Err(ApiError::AlreadyExists(meta.name.clone()));
        }
        Ok(self.put(object))
    }

    async fn update(&self, object: Object) -> Result<Object, ApiError> {
        Ok(self.put(object))
    }

    async fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        Ok(self.put(object))
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<(), ApiError> {
        let mut st = self.state.lock().unwrap();
        let k = key(Kind::Pod, namespace, name);
        match st.objects.get(&k) {
            Some(Object::Pod(p)) if p.metadata.as_ref().is_some_and(|m| m.uid == uid) => {
                let p = p.clone();
                st.objects.remove(&k);
                st.revision += 1;
                let _ = self
                    .events
                    .send((st.revision, PodEvent::Deleted(Box::new(p))));
                Ok(())
            }
            Some(_) => Err(ApiError::Conflict("uid differs".into())),
            None => Err(ApiError::NotFound(name.into())),
        }
    }

    async fn list_pods(&self, node: &str) -> Result<(Vec<Pod>, String), ApiError> {
        self.list_calls.fetch_add(1, Ordering::SeqCst);
        if FakeApi::take(&self.failing_lists) {
            return Err(ApiError::Other("scripted: no master available".into()));
        }
        let st = self.state.lock().unwrap();
        let pods = st
            .objects
            .values()
            .filter_map(|o| match o {
                Object::Pod(p) if node_of(p) == node => Some(p.clone()),
                _ => None,
            })
            .collect();
        Ok((pods, st.revision.to_string()))
    }

    fn watch_pods(&self, node: &str, resource_version: &str) -> PodEventStream {
        if FakeApi::take(&self.expiring_watches) {
            let err = ApiError::Expired("scripted: revision compacted".into());
            return Box::pin(futures::stream::once(async move { Err(err) }));
        }
        let from: u64 = resource_version.parse().unwrap_or(0);
        let node = node.to_owned();
        let rx = tokio_stream_of(self.events.subscribe());
        Box::pin(rx.filter_map(move |(rev, event)| {
            let node = node.clone();
            async move {
                let pod = match &event {
                    PodEvent::Upsert(p) | PodEvent::Deleted(p) => p,
                };
                (rev > from && node_of(pod) == node).then_some(Ok(event))
            }
        }))
    }

    async fn list_all(&self, kind: Kind) -> Result<(Vec<Object>, String), ApiError> {
        let st = self.state.lock().unwrap();
        let objects = st
            .objects
            .values()
            .filter(|o| o.kind() == kind)
            .cloned()
            .collect();
        Ok((objects, st.revision.to_string()))
    }

    /// Only pods change through this fake: other kinds' watches stay open and quiet.
    fn watch_all(&self, _kind: Kind, _resource_version: &str) -> ObjectEventStream {
        Box::pin(futures::stream::pending())
    }
}

fn tokio_stream_of(
    rx: broadcast::Receiver<(u64, PodEvent)>,
) -> impl futures::Stream<Item = (u64, PodEvent)> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(item) => return Some((item, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
