//! [`Client`]: typed calls to the `Resources` and `Cluster` services of a cluster of
//! masters, each through the failover loop.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rafter_proto::api::cluster_client::ClusterClient;
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{v1, Kind, Object};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::Request;

use rafter_proto::well_known::{
    AGENT_STATUS_METADATA, IMPERSONATE_GROUP_METADATA, IMPERSONATE_USER_METADATA,
};
use rafter_proto::{DeleteOptions, PatchType, Propagation, WatchEvent};

use crate::config::ResolvedConfig;
use crate::contact::{self, Contact};
use crate::error::{self, ClientError};
use crate::failover::{Budget, Endpoint, Failover, Idempotency, Probe};
use crate::watch;

/// Time budgets and transport settings of a [`Client`].
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// All attempts of one call together; after it, NoMasterAvailable (default 30 s).
    pub total_timeout: Duration,
    /// One unary attempt on one master (default 10 s); a read moves on to the next master
    /// after it, a write's outcome becomes unknown. Streams (watches, logs) are bounded by
    /// it only until they open. A master that stopped answering altogether is noticed
    /// sooner, by `keepalive`.
    pub attempt_timeout: Duration,
    /// Setting up a connection, TCP and TLS (default 2 s: a master on the cluster's network
    /// answers a handshake in milliseconds even when busy, and a paused one accepts TCP
    /// connections without ever completing the handshake).
    pub connect_timeout: Duration,
    /// The interval of HTTP/2 pings on every connection, idle or carrying requests
    /// (default 500 ms). A master whose process is paused or cut off behind a connection
    /// that stays open answers no ping: its connection fails after
    /// `keepalive + keepalive_timeout`, with every request on it (a unary call, an open
    /// watch or log stream), well before `attempt_timeout`; a master that is merely slow
    /// to answer a request still answers pings, so slow calls and long watches are not
    /// cut.
    pub keepalive: Duration,
    /// How long a ping may go unanswered before the connection counts as dead (default
    /// 2 s: a master answers pings from its transport layer, but a loaded machine can hold
    /// it back for a second).
    pub keepalive_timeout: Duration,
    /// A unary attempt (or the opening of a stream) unanswered this long has every master
    /// asked for its status at once (default 300 ms). A master that does not answer that
    /// probe while another does is silent (paused, black-holed): the attempt is abandoned
    /// (a read moves on, a write's outcome is unknown) and open watches leave that master.
    /// A master that answers its probe is only slow and is waited for; it is probed again
    /// after twice the interval.
    pub probe_after: Duration,
    /// How long a probe may take (default 500 ms).
    pub probe_timeout: Duration,
    /// **Test only; never set it elsewhere.** Takes a write of unknown outcome for one
    /// that was not sent and sends it again to another master: the broken client that an
    /// at-most-once check must catch (a `generateName` create applied twice). Off by
    /// default.
    #[doc(hidden)]
    pub testing_retry_unknown_outcomes: bool,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            total_timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            keepalive: Duration::from_millis(500),
            keepalive_timeout: Duration::from_secs(2),
            probe_after: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(500),
            testing_retry_unknown_outcomes: false,
        }
    }
}

/// Which objects a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// A label selector (`app=web,tier in (a,b),!canary`); empty: all.
    pub label_selector: String,
    /// A field selector (`metadata.name=x,spec.nodeName=w1`); empty: all.
    pub field_selector: String,
    /// At most this many items per page; 0: all.
    pub limit: i64,
    /// The `continue` token of the previous page.
    pub continue_token: Option<String>,
}

/// Which changes a watch delivers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchParams {
    /// A label selector; empty: all.
    pub label_selector: String,
    /// A field selector; empty: all.
    pub field_selector: String,
    /// Deliver bookmark events (progress without a change) too.
    pub bookmarks: bool,
}

/// Which log [`Client::logs`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogParams {
    /// The container; `None`: the pod's only container.
    pub container: Option<String>,
    /// Keep the stream open and deliver lines as they are written.
    pub follow: bool,
    /// The previous (restarted) instance's log instead of the current one.
    pub previous: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct ObjectList {
    /// The objects.
    pub items: Vec<Object>,
    /// The revision the list was read at: watch from here.
    pub resource_version: String,
    /// The token for the next page, when more remain.
    pub continue_token: Option<String>,
    /// How many items remain after this page, when known.
    pub remaining_item_count: i64,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The object as deleted, or as it now is while finalizers or a grace period run.
    pub object: Option<Object>,
    /// True when it is gone.
    pub deleted: bool,
}

/// Options of a delete: grace period, propagation and preconditions.
pub type DeleteParams = DeleteOptions;

/// A client of one cluster, over every master it was configured with. Cheap to clone;
/// clones share channels and the view of which masters are healthy.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    /// Whom every call acts as (`--as`), when not the caller itself.
    impersonation: Option<Arc<Impersonation>>,
}

/// The metadata of acting as another user: `impersonate-user` and one
/// `impersonate-group` per group.
struct Impersonation {
    user: MetadataValue<Ascii>,
    groups: Vec<MetadataValue<Ascii>>,
}

pub(crate) struct Inner {
    pub(crate) failover: Failover,
    authorization: Option<MetadataValue<Ascii>>,
    namespace: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

fn setup(message: impl Into<String>) -> ClientError {
    ClientError::Setup {
        message: message.into(),
    }
}

fn endpoint(
    uri: &str,
    config: &ResolvedConfig,
    options: &ClientOptions,
) -> Result<Endpoint, ClientError> {
    let parsed: tonic::codegen::http::Uri = uri
        .parse()
        .map_err(|e| setup(format!("endpoint {uri:?} is not a URL: {e}")))?;
    let authority = parsed
        .authority()
        .ok_or_else(|| setup(format!("endpoint {uri:?} names no host")))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let mut builder = tonic::transport::Endpoint::from_shared(uri.to_owned())
        .map_err(|e| setup(format!("endpoint {uri:?}: {e}")))?
        .connect_timeout(options.connect_timeout)
        .http2_keep_alive_interval(options.keepalive)
        .keep_alive_timeout(options.keepalive_timeout)
        .keep_alive_while_idle(true);
    if !config.insecure {
        let ca = config.ca_pem.as_ref().ok_or_else(|| {
            setup("no cluster CA to verify the masters with (and the cluster is not insecure)")
        })?;
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name(host);
        if let Some(identity) = &config.identity {
            tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        builder = builder
            .tls_config(tls)
            .map_err(|e| setup(format!("TLS for {uri}: {e}")))?;
    }
    // Over TLS, a master that never spoke on a connection was sent no request on it.
    let contact = Arc::new(Contact::default());
    Ok(Endpoint {
        address: authority.to_string(),
        channel: builder.connect_with_connector_lazy(contact::connector(contact.clone())),
        contact: (!config.insecure).then_some(contact),
    })
}

/// The probe of a master's liveness: its Cluster status, with the caller's credentials.
/// Any answer the master sends counts, a refusal too: it comes from a live process.
fn status_probe(authorization: Option<MetadataValue<Ascii>>) -> Probe {
    Arc::new(move |_, channel: Channel, timeout: Duration| {
        let mut request = Request::new(api::Empty {});
        if let Some(value) = &authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request.set_timeout(timeout);
        Box::pin(async move {
            match ClusterClient::new(channel).status(request).await {
                Ok(_) => Ok(()),
                // A status the master sent (a refusal, an outage of its store): alive.
                Err(status)
                    if std::error::Error::source(&status).is_none()
                        && !matches!(
                            status.code(),
                            tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
                        ) =>
                {
                    Ok(())
                }
                Err(status) => Err(status),
            }
        })
    })
}

/// The size of the pieces an image archive is sent in (under gRPC's 4 MiB message limit).
pub const IMAGE_PIECE: usize = 1024 * 1024;

/// The error a log stream that broke after it opened ends with.
fn log_stream_error(master: &str, status: &tonic::Status) -> ClientError {
    if std::error::Error::source(status).is_none() {
        return ClientError::from_answer(status);
    }
    let why = match error::classify(status) {
        error::Failure::Answer(e) => return e,
        error::Failure::NotSent(m) | error::Failure::InFlight(m) => m,
    };
    ClientError::Server {
        code: status.code(),
        message: format!(
            "the log stream from {master} broke ({why}); it is not resumed on another master"
        ),
    }
}

fn object_of(typed: TypedObject) -> Result<Object, ClientError> {
    Object::try_from(typed).map_err(|e| ClientError::Protocol {
        message: e.to_string(),
    })
}

fn key(kind: Kind, namespace: &str, name: &str) -> Option<api::ObjectKey> {
    Some(api::ObjectKey {
        kind: kind.name().to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

impl Client {
    /// A client of every master in `config`, with default [`ClientOptions`]. Nothing is
    /// connected yet: each master is connected on first use. Must run inside a Tokio
    /// runtime.
    pub async fn connect(config: ResolvedConfig) -> Result<Client, ClientError> {
        Client::connect_with(config, ClientOptions::default()).await
    }

    /// [`Client::connect`] with explicit options.
    pub async fn connect_with(
        config: ResolvedConfig,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(setup("no master endpoints are configured"));
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|uri| endpoint(uri, &config, &options))
            .collect::<Result<Vec<_>, _>>()?;
        let authorization = match &config.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| setup("the token has characters a header cannot carry"))?,
            ),
            None => None,
        };
        let budget = Budget {
            total: options.total_timeout,
            attempt: options.attempt_timeout,
            probe_after: options.probe_after,
            probe_timeout: options.probe_timeout,
            retry_unknown_outcomes: options.testing_retry_unknown_outcomes,
        };
        tracing::debug!(endpoints = ?config.endpoints, context = %config.context, "client configured");
        Ok(Client {
            impersonation: None,
            inner: Arc::new(Inner {
                failover: Failover::new(
                    endpoints,
                    budget,
                    Some(status_probe(authorization.clone())),
                ),
                authorization,
                namespace: config.namespace,
            }),
        })
    }

    /// The default namespace of the context the client was configured from.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The same client (sharing its connections) acting as `user` in `groups` on every
    /// call (kubectl's `--as` / `--as-group`). The server allows it only to a caller
    /// granted `impersonate` on those users and groups.
    pub fn impersonating(&self, user: &str, groups: &[String]) -> Result<Client, ClientError> {
        let value = |text: &str, what: &str| {
            text.parse::<MetadataValue<Ascii>>().map_err(|_| {
                setup(format!(
                    "{what} {text:?} has characters a header cannot carry"
                ))
            })
        };
        if user.is_empty() {
            return Err(setup("--as names no user; --as-group needs --as"));
        }
        Ok(Client {
            inner: self.inner.clone(),
            impersonation: Some(Arc::new(Impersonation {
                user: value(user, "the user")?,
                groups: groups
                    .iter()
                    .map(|g| value(g, "the group"))
                    .collect::<Result<_, _>>()?,
            })),
        })
    }

    /// A request carrying the credentials and, for unary calls, a deadline.
    pub(crate) fn request<M>(&self, message: M, timeout: Option<Duration>) -> Request<M> {
        let mut request = Request::new(message);
        if let Some(value) = &self.inner.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(impersonation) = &self.impersonation {
            let metadata = request.metadata_mut();
            metadata.insert(IMPERSONATE_USER_METADATA, impersonation.user.clone());
            for group in &impersonation.groups {
                metadata.append(IMPERSONATE_GROUP_METADATA, group.clone());
            }
        }
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }

    /// Runs one unary `Resources` call through the failover loop.
    async fn resources<M, T, F, Fut>(
        &self,
        what: &str,
        idempotency: Idempotency,
        message: M,
        call: F,
    ) -> Result<T, ClientError>
    where
        M: Clone,
        F: Fn(ResourcesClient<Channel>, Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let (_, answer) = self
            .inner
            .failover
            .run(what, idempotency, |channel, left| {
                call(
                    ResourcesClient::new(channel),
                    self.request(message.clone(), Some(left)),
                )
            })
            .await?;
        Ok(answer.into_inner())
    }

    /// Creates `object`. A namespaced object without a namespace goes to the client's
    /// default namespace. See the module doc for what a retry after an unknown outcome
    /// means.
    pub async fn create(&self, mut object: Object) -> Result<Object, ClientError> {
        let kind = object.kind();
        if kind.info().namespaced && object.metadata().namespace.is_empty() {
            object.metadata_mut().namespace = self.inner.namespace.clone();
        }
        let message = api::CreateRequest {
            object: Some(TypedObject::from(object)),
            dry_run: false,
            field_manager: Default::default(),
        };
        let created = self
            .resources(
                "create",
                Idempotency::Write,
                message,
                |mut c, r| async move { c.create(r).await },
            )
            .await?;
        object_of(created)
    }

    /// Reads one object (`namespace` empty for cluster-scoped kinds).
    pub async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ClientError> {
        self.get_with(kind, namespace, name, api::Consistency::Linearizable)
            .await
    }

    /// Reads one object as the answering master's member has applied it (a serializable,
    /// follower read: no round trip to the leader, so it may be stale, but it never
    /// returns a value that was not written at the resourceVersion it carries).
    pub async fn get_serializable(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ClientError> {
        self.get_with(kind, namespace, name, api::Consistency::Serializable)
            .await
    }

    async fn get_with(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        consistency: api::Consistency,
    ) -> Result<Object, ClientError> {
        let message = api::GetRequest {
            key: key(kind, namespace, name),
            consistency: consistency as i32,
        };
        let object = self
            .resources("get", Idempotency::Read, message, |mut c, r| async move {
                c.get(r).await
            })
            .await?;
        object_of(object)
    }

    /// Lists objects of `kind` in `namespace` (all namespaces when `None`).
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList, ClientError> {
        let message = api::ListRequest {
            kind: kind.name().to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            limit: params.limit,
            r#continue: params.continue_token.clone().unwrap_or_default(),
            consistency: api::Consistency::Linearizable as i32,
        };
        let list = self
            .resources("list", Idempotency::Read, message, |mut c, r| async move {
                c.list(r).await
            })
            .await?;
        Ok(ObjectList {
            items: list
                .items
                .into_iter()
                .map(object_of)
                .collect::<Result<_, _>>()?,
            resource_version: list.resource_version,
            continue_token: (!list.r#continue.is_empty()).then_some(list.r#continue),
            remaining_item_count: list.remaining_item_count,
        })
    }

    async fn update_subresource(
        &self,
        object: Object,
        subresource: &str,
    ) -> Result<Object, ClientError> {
        let message = api::UpdateRequest {
            object: Some(TypedObject::from(object)),
            subresource: subresource.to_owned(),
            dry_run: false,
            field_manager: Default::default(),
        };
        let updated = self
            .resources(
                "update",
                Idempotency::Write,
                message,
                |mut c, r| async move { c.update(r).await },
            )
            .await?;
        object_of(updated)
    }

    /// Replaces an object (not its status). A set `metadata.resourceVersion` must be
    /// current, else Conflict.
    pub async fn update(&self, object: Object) -> Result<Object, ClientError> {
        self.update_subresource(object, "").await
    }

    /// Replaces an object's status (the status subresource).
    pub async fn update_status(&self, object: Object) -> Result<Object, ClientError> {
        self.update_subresource(object, "status").await
    }

    /// Patches an object with a JSON merge patch or a strategic merge patch.
    pub async fn patch(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        patch_type: PatchType,
        patch: &serde_json::Value,
    ) -> Result<Object, ClientError> {
        let message = api::PatchRequest {
            key: key(kind, namespace, name),
            r#type: match patch_type {
                PatchType::Merge => api::PatchType::Merge as i32,
                PatchType::StrategicMerge => api::PatchType::Strategic as i32,
            },
            patch: patch.to_string(),
            subresource: String::new(),
            dry_run: false,
            field_manager: Default::default(),
        };
        let patched = self
            .resources(
                "patch",
                Idempotency::Write,
                message,
                |mut c, r| async move { c.patch(r).await },
            )
            .await?;
        object_of(patched)
    }

    /// Deletes an object.
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
    ) -> Result<Deleted, ClientError> {
        let message = api::DeleteRequest {
            key: key(kind, namespace, name),
            grace_period_seconds: params.grace_period_seconds,
            propagation_policy: match params.propagation {
                None => String::new(),
                Some(Propagation::Orphan) => "Orphan".to_owned(),
                Some(Propagation::Background) => "Background".to_owned(),
                Some(Propagation::Foreground) => "Foreground".to_owned(),
            },
            preconditions: Some(api::Preconditions {
                uid: params.precondition_uid.clone().unwrap_or_default(),
                resource_version: params
                    .precondition_resource_version
                    .clone()
                    .unwrap_or_default(),
            }),
            dry_run: false,
        };
        let answer = self
            .resources(
                "delete",
                Idempotency::Write,
                message,
                |mut c, r| async move { c.delete(r).await },
            )
            .await?;
        Ok(Deleted {
            object: answer.object.map(object_of).transpose()?,
            deleted: answer.deleted,
        })
    }

    /// Binds a pod to a node (the scheduler's pods/binding).
    pub async fn bind(
        &self,
        namespace: &str,
        pod: &str,
        node: &str,
    ) -> Result<v1::Pod, ClientError> {
        let message = api::BindRequest {
            binding: Some(v1::Binding {
                api_version: "v1".to_owned(),
                kind: "Binding".to_owned(),
                metadata: Some(v1::ObjectMeta {
                    name: pod.to_owned(),
                    namespace: namespace.to_owned(),
                    ..Default::default()
                }),
                target: Some(v1::ObjectReference {
                    kind: "Node".to_owned(),
                    name: node.to_owned(),
                    ..Default::default()
                }),
            }),
        };
        self.resources("bind", Idempotency::Write, message, |mut c, r| async move {
            c.bind(r).await
        })
        .await
    }

    /// Evicts a pod (pods/eviction: a graceful delete, as drain does).
    pub async fn evict(
        &self,
        namespace: &str,
        name: &str,
        grace_period_seconds: Option<i64>,
    ) -> Result<(), ClientError> {
        let message = api::EvictRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            grace_period_seconds,
        };
        self.resources(
            "evict",
            Idempotency::Write,
            message,
            |mut c, r| async move { c.evict(r).await },
        )
        .await?;
        Ok(())
    }

    /// Reads the scale of a Deployment or ReplicaSet.
    pub async fn get_scale(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<api::Scale, ClientError> {
        let message = api::GetScaleRequest {
            key: key(kind, namespace, name),
        };
        self.resources(
            "get scale",
            Idempotency::Read,
            message,
            |mut c, r| async move { c.get_scale(r).await },
        )
        .await
    }

    /// Sets the replicas of a Deployment or ReplicaSet; a given `resource_version` must
    /// be current.
    pub async fn update_scale(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        replicas: i32,
        resource_version: Option<&str>,
    ) -> Result<api::Scale, ClientError> {
        let message = api::UpdateScaleRequest {
            key: key(kind, namespace, name),
            replicas,
            resource_version: resource_version.unwrap_or_default().to_owned(),
            field_manager: Default::default(),
        };
        self.resources(
            "update scale",
            Idempotency::Write,
            message,
            |mut c, r| async move { c.update_scale(r).await },
        )
        .await
    }

    /// Approves (or, with `approve = false`, denies) a CertificateSigningRequest.
    pub async fn approve_certificate(
        &self,
        name: &str,
        approve: bool,
        reason: &str,
        message: &str,
    ) -> Result<v1::CertificateSigningRequest, ClientError> {
        let request = api::CertificateApprovalRequest {
            name: name.to_owned(),
            approve,
            reason: reason.to_owned(),
            message: message.to_owned(),
        };
        self.resources(
            "approve certificate",
            Idempotency::Write,
            request,
            |mut c, r| async move { c.approve_certificate(r).await },
        )
        .await
    }

    /// Whether a user (the caller when `request.user` is empty) may make a request, as the
    /// server's authorizers decide it (`rafter auth can-i`).
    pub async fn review_access(
        &self,
        request: api::AccessReviewRequest,
    ) -> Result<api::AccessReviewResponse, ClientError> {
        self.resources(
            "review access",
            Idempotency::Read,
            request,
            |mut c, r| async move { c.review_access(r).await },
        )
        .await
    }

    /// The rules the caller has in `namespace` (`rafter auth can-i --list`).
    pub async fn review_rules(
        &self,
        namespace: &str,
    ) -> Result<api::RulesReviewResponse, ClientError> {
        self.resources(
            "review rules",
            Idempotency::Read,
            api::RulesReviewRequest {
                namespace: namespace.to_owned(),
            },
            |mut c, r| async move { c.review_rules(r).await },
        )
        .await
    }

    /// A signed token for a ServiceAccount (serviceaccounts/token; `rafter create token`,
    /// and an agent's mounted tokens). Nothing is stored, so a retry is harmless.
    pub async fn create_token(
        &self,
        request: api::TokenRequest,
    ) -> Result<api::TokenResponse, ClientError> {
        self.resources(
            "create token",
            Idempotency::Read,
            request,
            |mut c, r| async move { c.create_token(r).await },
        )
        .await
    }

    /// The cluster as the master that answers sees it: members, leader, term, indexes.
    pub async fn cluster_status(&self) -> Result<api::ClusterStatus, ClientError> {
        let (_, status) = self
            .inner
            .failover
            .run("cluster status", Idempotency::Read, |channel, left| {
                let request = self.request(api::Empty {}, Some(left));
                async move { ClusterClient::new(channel).status(request).await }
            })
            .await?;
        Ok(status.into_inner())
    }

    /// Adds a master to the store's membership: a learner that catches up from the leader
    /// (the call returns once it has), then a voter when `request.promote` is set. Needs a
    /// `system:masters` caller. Adding a member twice changes nothing.
    pub async fn add_member(
        &self,
        request: api::AddMemberRequest,
    ) -> Result<api::ClusterStatus, ClientError> {
        let (_, status) = self
            .inner
            .failover
            .run("add member", Idempotency::Write, |channel, left| {
                let request = self.request(request.clone(), Some(left));
                async move { ClusterClient::new(channel).add_member(request).await }
            })
            .await?;
        Ok(status.into_inner())
    }

    /// Removes a voter from the store's membership (a dead master being replaced, say).
    /// Needs a `system:masters` caller.
    pub async fn remove_member(&self, id: u64) -> Result<api::ClusterStatus, ClientError> {
        let (_, status) = self
            .inner
            .failover
            .run("remove member", Idempotency::Write, |channel, left| {
                let request = self.request(api::RemoveMemberRequest { id }, Some(left));
                async move { ClusterClient::new(channel).remove_member(request).await }
            })
            .await?;
        Ok(status.into_inner())
    }

    /// A consistent copy of the whole store (raft-store's checksummed backup format), read
    /// from any master after a linearizable barrier. Needs a `system:masters` caller.
    pub async fn snapshot(&self) -> Result<Vec<u8>, ClientError> {
        let (_, bytes) = self
            .inner
            .failover
            .run("snapshot", Idempotency::Read, |channel, left| {
                let request = self.request(api::Empty {}, Some(left));
                async move {
                    let mut stream = ClusterClient::new(channel)
                        .snapshot(request)
                        .await?
                        .into_inner();
                    let mut bytes = Vec::new();
                    while let Some(chunk) = stream.message().await? {
                        bytes.extend_from_slice(&chunk.data);
                    }
                    Ok(bytes)
                }
            })
            .await?;
        Ok(bytes)
    }

    /// The images of one node's (`Some(name)`) or every node's container runtime, asked
    /// by a master of the nodes' agents now (`get` on nodes/images). A node whose agent
    /// cannot answer is in the answer with its `error` set; a missing node is NotFound.
    pub async fn images(&self, node: Option<&str>) -> Result<api::ImagesResponse, ClientError> {
        let message = api::ImagesRequest {
            node: node.unwrap_or_default().to_owned(),
        };
        self.resources(
            "images",
            Idempotency::Read,
            message,
            |mut c, r| async move { c.images(r).await },
        )
        .await
    }

    /// Imports the image archive (OCI layout or docker archive) at `path` into the
    /// container runtime of every Ready node (`create` on nodes/images); one outcome per
    /// node, each with the images imported or its error. The call is opened with failover
    /// like a read (nothing is imported before the whole archive has been sent); once the
    /// master has named the nodes, the file is streamed to it in pieces of
    /// [`IMAGE_PIECE`] bytes, with no deadline. `file_name` names the archive in messages.
    pub async fn import_image(
        &self,
        path: &std::path::Path,
        file_name: &str,
    ) -> Result<Vec<api::NodeImageImport>, ClientError> {
        let file_error = |source| ClientError::File {
            path: path.to_owned(),
            source,
        };
        let size = tokio::fs::metadata(path).await.map_err(file_error)?.len();
        let header = api::ImageImportRequest {
            file_name: file_name.to_owned(),
            size,
            data: Vec::new(),
        };
        let (_, (pieces, mut events, nodes)) = self
            .inner
            .failover
            .run("import image", Idempotency::Read, |channel, _| {
                let (pieces, receiver) = tokio::sync::mpsc::channel(4);
                // The channel is new and empty: the header always fits.
                let _ = pieces.try_send(header.clone());
                let request =
                    self.request(tokio_stream::wrappers::ReceiverStream::new(receiver), None);
                async move {
                    let mut events = ResourcesClient::new(channel)
                        .import_image(request)
                        .await?
                        .into_inner();
                    let first = events.message().await?.ok_or_else(|| {
                        tonic::Status::unavailable("the import ended before it named the nodes")
                    })?;
                    Ok((pieces, events, first.nodes))
                }
            })
            .await?;
        tracing::debug!(archive = %file_name, size, nodes = ?nodes, "sending an image archive");
        let mut file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let sending = async move {
            use tokio::io::AsyncReadExt;
            let mut sent: u64 = 0;
            while sent < size {
                let mut data = vec![0u8; IMAGE_PIECE];
                let n = file.read(&mut data).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the file ended after {sent} of {size} bytes"),
                    ));
                }
                data.truncate(n);
                sent += n as u64;
                let piece = api::ImageImportRequest {
                    data,
                    ..Default::default()
                };
                if pieces.send(piece).await.is_err() {
                    // The master ended the call: its answer says why.
                    break;
                }
            }
            // The end of the request stream: the master hands the end on to the agents.
            drop(pieces);
            Ok(())
        };
        let receiving = async {
            let mut results = Vec::new();
            while let Some(event) = events
                .message()
                .await
                .map_err(|s| ClientError::from_answer(&s))?
            {
                results.extend(event.result);
            }
            Ok::<_, ClientError>(results)
        };
        // The master answers once every agent is done, or at once when it gives up (then
        // the rest of the file is not sent).
        tokio::pin!(sending, receiving);
        let mut results = tokio::select! {
            results = &mut receiving => results?,
            sent = &mut sending => {
                sent.map_err(file_error)?;
                receiving.await?
            }
        };
        for node in nodes {
            if !results.iter().any(|r| r.node == node) {
                results.push(api::NodeImageImport {
                    node,
                    images: Vec::new(),
                    error: "the master sent no result for this node".to_owned(),
                });
            }
        }
        Ok(results)
    }

    /// Measured CPU and memory of one node (`Some(name)`) or every node, with their pods
    /// and containers, asked by a master of the nodes' agents now. A node whose agent
    /// cannot answer is in the answer with its `error` set; a missing node is NotFound.
    pub async fn metrics(&self, node: Option<&str>) -> Result<api::MetricsResponse, ClientError> {
        let message = api::MetricsRequest {
            node: node.unwrap_or_default().to_owned(),
        };
        self.resources(
            "metrics",
            Idempotency::Read,
            message,
            |mut c, r| async move { c.metrics(r).await },
        )
        .await
    }

    /// Runs a command in a container (pods/exec), relayed by a master to the agent of the
    /// pod's node: `start` names the pod, container and command. Opening fails over
    /// between masters as a write does (sent again only where it surely did not arrive);
    /// an answer about the pod or its agent comes back at once. The session's `input`
    /// takes stdin, resizes and the close of stdin; its `output` yields stdout and
    /// stderr, then the exit. Dropping the session ends the command.
    pub async fn exec(&self, start: api::ExecStart) -> Result<ExecSession, ClientError> {
        let (input, input_rx) = tokio::sync::mpsc::channel::<api::ExecRequest>(32);
        // Every attempt reads from the one receiver (one at a time): an attempt that
        // failed gives it back for the next.
        let shared = Arc::new(tokio::sync::Mutex::new(input_rx));
        let opened = self
            .inner
            .failover
            .run("exec", Idempotency::Write, |channel, _| {
                let first = api::ExecRequest {
                    msg: Some(api::exec_request::Msg::Start(start.clone())),
                };
                let later = futures::stream::unfold(shared.clone(), |shared| async move {
                    let next = shared.lock().await.recv().await;
                    next.map(|message| (message, shared))
                });
                let messages =
                    futures::StreamExt::chain(futures::stream::once(async move { first }), later);
                let request = self.request(messages, None);
                async move {
                    match ResourcesClient::new(channel).exec(request).await {
                        Ok(answer) => Ok(Ok(answer.into_inner())),
                        // About the agent, not this master: another would say the same.
                        Err(status) if status.metadata().get(AGENT_STATUS_METADATA).is_some() => {
                            Ok(Err(status))
                        }
                        Err(status) => Err(status),
                    }
                }
            })
            .await?;
        match opened {
            (_, Ok(output)) => Ok(ExecSession { input, output }),
            (_, Err(status)) => Err(ClientError::from_answer(&status)),
        }
    }

    /// Attaches to the stdio of a running container's own process (pods/attach), relayed
    /// by a master from the agent of the pod's node; opened as [`exec`](Self::exec) is.
    /// The session's `input` takes stdin, resizes and the close of stdin; its `output`
    /// yields the container's output from now on, then one exit when the attach ends.
    /// Dropping the session detaches.
    pub async fn attach(&self, start: api::AttachStart) -> Result<AttachSession, ClientError> {
        let first = api::AttachRequest {
            msg: Some(api::attach_request::Msg::Start(start)),
        };
        let (input, output) = self
            .open_bidi("attach", first, |mut c, r| async move { c.attach(r).await })
            .await?;
        Ok(AttachSession { input, output })
    }

    /// Opens one TCP connection to a port of a pod (pods/portforward), relayed by a
    /// master through the agent of the pod's node; opened as [`exec`](Self::exec) is.
    /// The session's `input` takes the bytes for the pod's port (dropping it is the
    /// half-close); its `output` yields the port's bytes and ends when the pod closes
    /// its side, with an error when the connection could not be made or broke.
    pub async fn port_forward(
        &self,
        start: api::PortForwardStart,
    ) -> Result<PortForwardSession, ClientError> {
        let first = api::PortForwardRequest {
            msg: Some(api::port_forward_request::Msg::Start(start)),
        };
        let (input, output) = self
            .open_bidi("port-forward", first, |mut c, r| async move {
                c.port_forward(r).await
            })
            .await?;
        Ok(PortForwardSession { input, output })
    }

    /// Opens a client-streaming `Resources` call with failover, as `exec` does: `first`,
    /// then what the returned sender takes. An answer about the agent comes back at once.
    async fn open_bidi<Req, Resp, F, Fut>(
        &self,
        what: &str,
        first: Req,
        call: F,
    ) -> Result<(tokio::sync::mpsc::Sender<Req>, tonic::Streaming<Resp>), ClientError>
    where
        Req: Clone + Send + 'static,
        F: Fn(ResourcesClient<Channel>, Request<BoxedInput<Req>>) -> Fut,
        Fut: std::future::Future<
            Output = Result<tonic::Response<tonic::Streaming<Resp>>, tonic::Status>,
        >,
    {
        let (input, input_rx) = tokio::sync::mpsc::channel::<Req>(32);
        // Every attempt reads from the one receiver (one at a time): an attempt that
        // failed gives it back for the next.
        let shared = Arc::new(tokio::sync::Mutex::new(input_rx));
        let opened = self
            .inner
            .failover
            .run(what, Idempotency::Write, |channel, _| {
                let first = first.clone();
                let later = futures::stream::unfold(shared.clone(), |shared| async move {
                    let next = shared.lock().await.recv().await;
                    next.map(|message| (message, shared))
                });
                let messages: BoxedInput<Req> = Box::pin(futures::StreamExt::chain(
                    futures::stream::once(async move { first }),
                    later,
                ));
                let answer = call(ResourcesClient::new(channel), self.request(messages, None));
                async move {
                    match answer.await {
                        Ok(answer) => Ok(Ok(answer.into_inner())),
                        // About the agent, not this master: another would say the same.
                        Err(status) if status.metadata().get(AGENT_STATUS_METADATA).is_some() => {
                            Ok(Err(status))
                        }
                        Err(status) => Err(status),
                    }
                }
            })
            .await?;
        match opened {
            (_, Ok(output)) => Ok((input, output)),
            (_, Err(status)) => Err(ClientError::from_answer(&status)),
        }
    }

    /// A container's log (pods/log), as bytes of whole lines, relayed by a master from
    /// the agent of the pod's node. Opening the stream fails over between masters like
    /// any read; an answer about the pod or its node's agent (NotFound, a pod not yet
    /// scheduled, an agent without a log endpoint) ends the stream with that error at
    /// once. Once bytes flow, a broken stream is not resumed on another master (the
    /// log has no position to resume from): it ends with an error, and the caller may
    /// ask again with `tail_lines`. A follow stream ends when it is dropped.
    pub fn logs(
        &self,
        namespace: &str,
        pod: &str,
        params: LogParams,
    ) -> impl Stream<Item = Result<Vec<u8>, ClientError>> + Send + 'static {
        let client = self.clone();
        let message = api::LogsRequest {
            namespace: namespace.to_owned(),
            name: pod.to_owned(),
            container: params.container.unwrap_or_default(),
            follow: params.follow,
            previous: params.previous,
            tail_lines: params.tail_lines,
        };
        async_stream::stream! {
            let opened = client
                .inner
                .failover
                .run("logs", Idempotency::Read, |channel, _| {
                    // No deadline: a follow stream stays open as long as the caller wants.
                    let request = client.request(message.clone(), None);
                    async move {
                        match ResourcesClient::new(channel).logs(request).await {
                            Ok(answer) => Ok(Ok(answer.into_inner())),
                            // About the agent, not this master: another would say the same.
                            Err(status)
                                if status.metadata().get(AGENT_STATUS_METADATA).is_some() =>
                            {
                                Ok(Err(status))
                            }
                            Err(status) => Err(status),
                        }
                    }
                })
                .await;
            let (master, mut stream) = match opened {
                Ok((i, Ok(stream))) => (client.inner.failover.address(i).to_owned(), stream),
                Ok((_, Err(status))) => {
                    yield Err(ClientError::from_answer(&status));
                    return;
                }
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            loop {
                match stream.message().await {
                    Ok(Some(chunk)) => yield Ok(chunk.data),
                    Ok(None) => break,
                    Err(status) => {
                        yield Err(log_stream_error(&master, &status));
                        break;
                    }
                }
            }
        }
    }

    /// Watches objects of `kind` in `namespace` (all namespaces when `None`): changes
    /// after `resource_version`, or, without one, the current objects as ADDED events
    /// first. The stream resumes on another master after a broken stream or a dead
    /// master, from the last revision it delivered: no change is missed or repeated. It
    /// ends after an error: [`ClientError::Expired`] means list again and watch from the
    /// list's resourceVersion.
    pub fn watch(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        params: &WatchParams,
        resource_version: Option<&str>,
    ) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send + 'static {
        watch::watch(
            self.clone(),
            kind,
            namespace.unwrap_or_default().to_owned(),
            params.clone(),
            resource_version.map(str::to_owned),
        )
    }
}

/// The stream of messages a client-streaming call sends.
type BoxedInput<T> = std::pin::Pin<Box<dyn Stream<Item = T> + Send>>;

/// An attach (see [`Client::attach`]).
#[derive(Debug)]
pub struct AttachSession {
    /// Stdin bytes, terminal resizes and the close of stdin, as the wire's messages.
    pub input: tokio::sync::mpsc::Sender<api::AttachRequest>,
    /// The container's output as it comes, then the end of the attach.
    pub output: tonic::Streaming<api::ExecResponse>,
}

/// One forwarded connection (see [`Client::port_forward`]).
#[derive(Debug)]
pub struct PortForwardSession {
    /// The bytes for the pod's port, as the wire's messages; dropping it half-closes.
    pub input: tokio::sync::mpsc::Sender<api::PortForwardRequest>,
    /// The port's bytes, until the pod closes its side.
    pub output: tonic::Streaming<api::PortForwardResponse>,
}

/// A running exec (see [`Client::exec`]).
#[derive(Debug)]
pub struct ExecSession {
    /// Stdin bytes, terminal resizes and the close of stdin, as the wire's messages.
    pub input: tokio::sync::mpsc::Sender<api::ExecRequest>,
    /// The command's stdout and stderr as they come, then its exit.
    pub output: tonic::Streaming<api::ExecResponse>,
}
