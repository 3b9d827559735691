//! What a controller core returns: [`Action`]s for the actor around it to carry out, and
//! [`Reconciled`], the actions plus when to look at the key again.
//!
//! Owns the vocabulary shared by every controller (create, update, delete, bind, evict,
//! record an event) and [`ObjectKey`]. It must not carry out anything: the actix actor that
//! wraps a core turns each action into a write through the gateway, fenced by the Raft
//! term the decision was taken under.

use std::fmt;
use std::time::Duration;

use rafter_proto::v1;
use rafter_proto::{Kind, Object, Propagation};

use rafter_proto::Timestamp;

/// Where an object lives: its kind, namespace ("" for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The object's kind.
    pub kind: Kind,
    /// The namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// A key from its parts.
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object.
    pub fn of(object: &Object) -> ObjectKey {
        let meta = object.metadata();
        ObjectKey::new(object.kind(), meta.namespace.clone(), meta.name.clone())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.name(), self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind.name(), self.namespace, self.name)
        }
    }
}

/// Normal or Warning, as Kubernetes events are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something a person may need to look at.
    Warning,
}

impl EventType {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event a controller wants recorded about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// The object the event is about.
    pub involved: ObjectKey,
    /// The uid of that object, when known.
    pub involved_uid: String,
    /// Normal or Warning.
    pub event_type: EventType,
    /// A short CamelCase reason (`FailedScheduling`, `ScalingReplicaSet`).
    pub reason: String,
    /// What a person reads.
    pub message: String,
    /// The controller that saw it (`default-scheduler`, `replicaset-controller`).
    pub component: &'static str,
}

impl EventRecord {
    /// An event about `object`.
    pub fn about(
        object: &Object,
        event_type: EventType,
        reason: &str,
        message: String,
        component: &'static str,
    ) -> EventRecord {
        EventRecord {
            involved: ObjectKey::of(object),
            involved_uid: object.metadata().uid.clone(),
            event_type,
            reason: reason.to_owned(),
            message,
            component,
        }
    }

    /// The event as an API object named `name` (the actor chooses a unique one), first
    /// and last seen at `now`.
    pub fn to_event(&self, name: String, now: Timestamp) -> v1::Event {
        let info = self.involved.kind.info();
        let namespace = if self.involved.namespace.is_empty() {
            "default".to_owned()
        } else {
            self.involved.namespace.clone()
        };
        v1::Event {
            api_version: "v1".to_owned(),
            kind: "Event".to_owned(),
            metadata: Some(v1::ObjectMeta {
                name,
                namespace: namespace.clone(),
                ..Default::default()
            }),
            involved_object: Some(v1::ObjectReference {
                kind: info.name.to_owned(),
                namespace: self.involved.namespace.clone(),
                name: self.involved.name.clone(),
                uid: self.involved_uid.clone(),
                api_version: info.api_version(),
                ..Default::default()
            }),
            reason: self.reason.clone(),
            message: self.message.clone(),
            source: Some(v1::EventSource {
                component: self.component.to_owned(),
                host: String::new(),
            }),
            first_timestamp: Some(now.to_rfc3339()),
            last_timestamp: Some(now.to_rfc3339()),
            count: 1,
            r#type: self.event_type.as_str().to_owned(),
            reporting_component: self.component.to_owned(),
            reporting_instance: String::new(),
        }
    }
}

/// One thing a controller wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the object (a name or a `generateName`).
    Create(Object),
    /// Replace the object's metadata and spec; its `resourceVersion` is the one read, so a
    /// concurrent change makes the write fail and the key is reconciled again.
    Update(Object),
    /// Replace the object's status (the status subresource). The actor writes this status
    /// onto the latest object, since the same reconcile may first `Update` its metadata
    /// or spec (a Deployment's revision annotation, a node's taints).
    UpdateStatus(Object),
    /// Delete the object.
    Delete {
        /// What to delete.
        key: ObjectKey,
        /// The uid it must still have (a precondition), so a recreated namesake survives.
        uid: Option<String>,
        /// Grace period in seconds; `None` is the object's own.
        grace_period_seconds: Option<i64>,
        /// Dependents' fate; `None` is the kind's default.
        propagation: Option<Propagation>,
    },
    /// Bind a pending pod to a node (the pods/binding subresource).
    Bind {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
        /// The pod's uid, so a recreated namesake is not bound by mistake.
        uid: String,
        /// The node chosen.
        node: String,
    },
    /// Evict a pod (delete it gracefully through the eviction subresource).
    Evict {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
        /// The pod's uid.
        uid: String,
        /// Grace period in seconds; `None` is the pod's own.
        grace_period_seconds: Option<i64>,
    },
    /// Record an event.
    RecordEvent(EventRecord),
}

impl Action {
    /// A delete of `object` with its uid as precondition.
    pub fn delete_of(object: &Object) -> Action {
        Action::Delete {
            key: ObjectKey::of(object),
            uid: Some(object.metadata().uid.clone()).filter(|u| !u.is_empty()),
            grace_period_seconds: None,
            propagation: None,
        }
    }
}

/// The result of reconciling one key: what to do, and when to look again even if nothing
/// changes (a deadline, a pod becoming available after `minReadySeconds`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reconciled {
    /// The actions, in the order they should be carried out.
    pub actions: Vec<Action>,
    /// Reconcile the key again after this long; `None` waits for a change.
    pub requeue_after: Option<Duration>,
}

impl Reconciled {
    /// Nothing to do.
    pub fn nothing() -> Reconciled {
        Reconciled::default()
    }

    /// Keeps the earlier of the current and the given requeue delay.
    pub fn requeue_within(&mut self, after: Duration) {
        self.requeue_after = Some(match self.requeue_after {
            Some(current) => current.min(after),
            None => after,
        });
    }

    /// The events among the actions.
    pub fn events(&self) -> impl Iterator<Item = &EventRecord> {
        self.actions.iter().filter_map(|a| match a {
            Action::RecordEvent(e) => Some(e),
            _ => None,
        })
    }
}
