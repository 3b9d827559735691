//! The public gRPC services: `Resources` over every kind, and `Cluster`.
//!
//! Owns the translation between the wire (`rafter.api.v1`) and the registry: every call
//! is authenticated (`auth`) and its request attributes (verb, resource, subresource,
//! namespace, name) passed to the [`Authorizer`] (`authz`) before anything is read; what
//! a bootstrap-token holder sees inside an allowed answer (only the CSRs it filed); who
//! filed a CSR (its `spec.username`/`groups` are always the caller's); request decoding;
//! and registry errors as gRPC status codes (`status`). It holds no state of its own.
//! pods/log is relayed from the node's agent (`pod_logs`), nodes/metrics and
//! nodes/images from every node's (`node_metrics`, `node_images`); serviceaccounts/token is
//! issued by `token_request`; every call may act as another user (`impersonation`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use rafter_proto::api::resources_server::Resources;
use rafter_proto::api::{self, TypedObject};
use rafter_proto::{v1, FieldSelector, Kind, Object, Selector};
use tonic::{Request, Response, Status};

use crate::agent_dial::AgentTls;
use crate::audit::{Audit, Auditor, Stage};
use crate::auth::{Authenticator, UserInfo, BOOTSTRAPPERS_GROUP, MASTERS_GROUP};
use crate::authz::{Attributes, Authorizer, Decision, Target};
use crate::impersonation::caller;
use crate::sa_token::TokenKeys;
use crate::status::{authorize, status_of, throttled};
use crate::token_request;

use crate::node_images;
use crate::node_metrics;
use crate::patch::apply_patch;
use crate::pod_exec;
use crate::pod_logs;
use crate::pod_port_forward;
use crate::registry::{now_rfc3339, FieldManager, Registry, RegistryError, Subresource};
use rafter_proto::{
    DeleteOptions, ListOptions, PatchType, Propagation, ReadConsistency, WatchEventType,
};

use crate::flow_control::{FlowControl, Seat};
use crate::store::KvStore;

/// The non-resource path a question about another user's access is authorized on.
const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// How often an idle watch with bookmarks enabled gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(5);

/// The `Resources` service over a registry.
pub struct ResourcesService<S> {
    registry: Registry<S>,
    authenticator: Authenticator<S>,
    authorizer: Arc<dyn Authorizer>,
    agent_tls: Option<AgentTls>,
    auditor: Option<Arc<Auditor>>,
    token_keys: Option<Arc<TokenKeys>>,
    flow_control: Option<Arc<FlowControl>>,
}

/// An admitted caller: who it is, and the seat its mutating request holds until the
/// answer (none for reads and for the exempt).
pub(crate) struct Admitted {
    user: UserInfo,
    _seat: Option<Seat>,
}

impl std::ops::Deref for Admitted {
    type Target = UserInfo;

    fn deref(&self) -> &UserInfo {
        &self.user
    }
}

/// Verbs that write, which take a seat of the flow control.
fn is_mutating(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

impl<S: KvStore> ResourcesService<S> {
    /// A service over `registry` whose callers `authenticator` identifies and `authorizer`
    /// authorizes. It can dial only plaintext agent endpoints until
    /// [`ResourcesService::with_agent_tls`].
    pub fn new(
        registry: Registry<S>,
        authenticator: Authenticator<S>,
        authorizer: Arc<dyn Authorizer>,
    ) -> ResourcesService<S> {
        ResourcesService {
            registry,
            authenticator,
            authorizer,
            agent_tls: None,
            auditor: None,
            token_keys: None,
            flow_control: None,
        }
    }

    /// Queues mutating requests fairly by user on `control`'s seats (`None`: no limit).
    pub fn with_flow_control(mut self, control: Option<Arc<FlowControl>>) -> ResourcesService<S> {
        self.flow_control = control;
        self
    }

    /// Issues ServiceAccount tokens signed with `keys` (`None`: refuses to issue).
    pub fn with_token_keys(mut self, keys: Option<Arc<TokenKeys>>) -> ResourcesService<S> {
        self.token_keys = keys;
        self
    }

    /// Records every call with `auditor` (`None`: no audit).
    pub fn with_audit(mut self, auditor: Option<Arc<Auditor>>) -> ResourcesService<S> {
        self.auditor = auditor;
        self
    }

    /// The audit record of a unary call, `verb` until admission names it.
    fn audit<T>(&self, request: &Request<T>, verb: &str) -> Audit {
        Audit::begin(
            self.auditor.as_ref(),
            request,
            verb,
            Stage::ResponseComplete,
        )
    }

    /// The audit record of a streaming call (recorded when the stream starts).
    fn audit_stream<T>(&self, request: &Request<T>, verb: &str) -> Audit {
        Audit::begin(self.auditor.as_ref(), request, verb, Stage::ResponseStarted)
    }

    /// Dials agents' https endpoints trusting `ca_pem` (the cluster CA) and presenting
    /// `cert_pem`/`key_pem` (the master's certificate) as the client.
    pub fn with_agent_tls(
        mut self,
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    ) -> ResourcesService<S> {
        self.agent_tls = Some(AgentTls {
            ca_pem,
            identity: Some((cert_pem, key_pem)),
        });
        self
    }

    /// Node `name` (NotFound if missing), or every node when `name` is empty, read from
    /// the local member.
    async fn nodes(&self, name: &str) -> Result<Vec<v1::Node>, Status> {
        let objects = if name.is_empty() {
            let options = ListOptions {
                consistency: ReadConsistency::Serializable,
                ..ListOptions::all(Kind::Node, None)
            };
            self.registry.list(&options).await.map_err(status_of)?.items
        } else {
            vec![self
                .registry
                .get(Kind::Node, "", name, ReadConsistency::Serializable)
                .await
                .map_err(status_of)?]
        };
        Ok(objects
            .into_iter()
            .filter_map(|o| match o {
                Object::Node(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// Authenticates the caller and asks the authorizer whether it may `verb` `target`;
    /// `audit` learns who asked for what.
    async fn admit_caller<T>(
        &self,
        audit: &mut Audit,
        request: &Request<T>,
        verb: &str,
        target: Target<'_>,
        object: Option<&Object>,
    ) -> Result<Admitted, Status> {
        let target = with_default_namespace(target, verb);
        audit.target(verb, &target, None);
        let user = caller(
            &self.authenticator,
            self.authorizer.as_ref(),
            audit,
            request,
        )
        .await?;
        audit.target(verb, &target, object);
        let attributes = Attributes {
            user: &user,
            verb,
            target,
            object,
        };
        authorize(self.authorizer.as_ref(), &attributes)?;
        let seat = match &self.flow_control {
            Some(control) if is_mutating(verb) => Some(
                control
                    .seat(&user.name, user.in_group(MASTERS_GROUP))
                    .await
                    .map_err(|e| throttled(&e))?,
            ),
            _ => None,
        };
        Ok(Admitted { user, _seat: seat })
    }
}

/// `target` in namespace `default` where a request on one namespaced object names none, as
/// the registry then reads or writes it there (a list or watch without one is across
/// every namespace).
fn with_default_namespace<'a>(target: Target<'a>, verb: &str) -> Target<'a> {
    match target {
        Target::Resource {
            kind, namespace, ..
        } if namespace.is_empty()
            && kind.info().namespaced
            && !matches!(verb, "list" | "watch") =>
        {
            target.namespace("default")
        }
        other => other,
    }
}

/// What a list or watch of `options` (sent with `field_selector`) asks for.
fn collection<'a>(options: &'a ListOptions, field_selector: &'a str) -> Target<'a> {
    Target::resource(options.kind)
        .namespace(options.namespace.as_deref().unwrap_or_default())
        .field_selector(field_selector)
}

/// Whether `user` may see `object`: bootstrap-token holders see only the
/// CertificateSigningRequests they filed themselves; everyone else sees everything.
fn visible_to(user: &UserInfo, object: &Object) -> bool {
    if !is_bootstrapper(user) {
        return true;
    }
    match object {
        Object::CertificateSigningRequest(csr) => csr
            .spec
            .as_ref()
            .is_some_and(|spec| spec.username == user.name),
        _ => false,
    }
}

fn is_bootstrapper(user: &UserInfo) -> bool {
    user.in_group(BOOTSTRAPPERS_GROUP) && !user.in_group(MASTERS_GROUP)
}

/// Records who files a CertificateSigningRequest, as Kubernetes does: `spec.username`,
/// `spec.uid` and `spec.groups` are the authenticated caller's, whatever the request
/// said, so the signer's auto-approval (bootstrap token or the node itself) can trust them.
fn stamp_requester(object: &mut Object, user: &UserInfo) {
    if let Object::CertificateSigningRequest(csr) = object {
        let spec = csr.spec.get_or_insert_with(Default::default);
        spec.username = user.name.clone();
        spec.uid = String::new();
        spec.groups = user.groups.clone();
    }
}

fn kind_of(name: &str) -> Result<Kind, Status> {
    Kind::resolve(name).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn object_of(typed: Option<TypedObject>) -> Result<Object, Status> {
    let typed = typed.ok_or_else(|| Status::invalid_argument("the request carries no object"))?;
    Object::try_from(typed).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn key_of(key: Option<api::ObjectKey>) -> Result<(Kind, String, String), Status> {
    let key = key.ok_or_else(|| Status::invalid_argument("the request names no object (key)"))?;
    if key.name.is_empty() {
        return Err(Status::invalid_argument(
            "the request names no object (key.name is empty)",
        ));
    }
    Ok((kind_of(&key.kind)?, key.namespace, key.name))
}

fn consistency_of(value: i32) -> ReadConsistency {
    if value == api::Consistency::Serializable as i32 {
        ReadConsistency::Serializable
    } else {
        ReadConsistency::Linearizable
    }
}

fn list_options(
    kind: &str,
    namespace: &str,
    labels: &str,
    fields: &str,
    consistency: i32,
) -> Result<ListOptions, Status> {
    let kind = kind_of(kind)?;
    let labels = Selector::parse(labels)
        .map_err(|e| Status::invalid_argument(format!("labelSelector: {e}")))?;
    let fields = FieldSelector::parse(fields)
        .map_err(|e| Status::invalid_argument(format!("fieldSelector: {e}")))?;
    fields
        .check(kind)
        .map_err(|e| Status::invalid_argument(format!("fieldSelector: {e}")))?;
    let mut options = ListOptions::all(kind, (!namespace.is_empty()).then_some(namespace));
    options.labels = labels;
    options.fields = fields;
    options.consistency = consistency_of(consistency);
    Ok(options)
}

/// The longest field manager name accepted, as in Kubernetes.
const MAX_FIELD_MANAGER: usize = 128;

/// Who a write's fields are recorded for: the manager the request names, else the
/// caller's user name (recorded only on objects already managed; see `FieldManager`).
fn field_manager(named: &str, user: &UserInfo) -> Result<FieldManager, Status> {
    if named.chars().count() > MAX_FIELD_MANAGER {
        return Err(Status::invalid_argument(format!(
            "fieldManager: Invalid value: {named:?}: must be no more than {MAX_FIELD_MANAGER} characters"
        )));
    }
    Ok(if named.is_empty() {
        FieldManager {
            name: user.name.clone(),
            explicit: false,
        }
    } else {
        FieldManager {
            name: named.to_owned(),
            explicit: true,
        }
    })
}

/// A client stream's messages after its first (the start), until it ends or breaks.
fn later_messages<T: Send + 'static>(
    inbound: tonic::Streaming<T>,
) -> Pin<Box<dyn Stream<Item = T> + Send>> {
    Box::pin(futures::stream::unfold(inbound, |mut inbound| {
        Box::pin(async move {
            match inbound.message().await {
                Ok(Some(message)) => Some((message, inbound)),
                Ok(None) | Err(_) => None,
            }
        })
    }))
}

fn typed(object: Object) -> TypedObject {
    TypedObject::from(object)
}

/// `process_resident_memory_bytes` (as Prometheus' process collector names it) and
/// `rafter_process_peak_resident_memory_bytes`, from `/proc/self/status` (nothing where
/// that cannot be read).
async fn process_text() -> String {
    let Ok(status) = tokio::fs::read_to_string("/proc/self/status").await else {
        return String::new();
    };
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    let (Some(rss), Some(peak)) = (kib("VmRSS:"), kib("VmHWM:")) else {
        return String::new();
    };
    let mut text = crate::prometheus::prometheus_text(
        "process",
        &[(
            "resident_memory_bytes",
            "resident set size in bytes",
            rss * 1024,
        )],
    );
    text.push_str(&crate::prometheus::prometheus_text(
        "rafter_process",
        &[(
            "peak_resident_memory_bytes",
            "the largest resident set size so far, in bytes",
            peak * 1024,
        )],
    ));
    text
}

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// An exec session's output: the command's stdout and stderr, then its exit.
pub(crate) type ExecOutput = BoxStream<api::ExecResponse>;

/// When an exec session's command starts: once the caller is admitted and the pod's node
/// found, either at once or when its output is first read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandStart {
    /// Before the call returns, so that failing to start is the call's error (gRPC).
    AtOnce,
    /// At the output's first read, a failure to start being the output's first item. A
    /// WebSocket or SPDY upgrade reads it once the client has the 101 answer: client-go
    /// registers its streams after the upgrade, and drops frames that arrive before, so
    /// the command must not be running (and writing) before then, as it is not in
    /// Kubernetes, where the API server upgrades first and then dials the kubelet.
    OnFirstRead,
}

/// A port-forward session's output: the bytes the pod's port sent, ending when the pod's
/// side closed (an `Err` when the connection could not be made or broke).
pub(crate) type PortForwardOutput = BoxStream<bytes::Bytes>;

/// The form a LIST's items take in its answer (see [`ResourcesService::list_page`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListItems {
    /// In their wire form: the gRPC answer.
    Encoded,
    /// As objects: for whoever reads them (the REST API's JSON).
    Decoded,
}

impl<S: KvStore> ResourcesService<S> {
    /// A page of a LIST: with [`ListItems::Encoded`], the items in their wire form (what the
    /// gRPC answer sends: stored bytes, nothing decoded or encoded per item unless a
    /// selector needs testing); with [`ListItems::Decoded`], as objects (what the REST API
    /// renders as JSON).
    pub(crate) async fn list_page(
        &self,
        request: Request<api::ListRequest>,
        form: ListItems,
    ) -> Result<Response<api::ListResponse>, Status> {
        let mut audit = self.audit(&request, "list");
        let result = async {
            let r = request.get_ref();
            let mut options = list_options(
                &r.kind,
                &r.namespace,
                &r.label_selector,
                &r.field_selector,
                r.consistency,
            )?;
            options.limit = usize::try_from(r.limit.max(0)).unwrap_or(usize::MAX);
            options.continue_token = (!r.r#continue.is_empty()).then(|| r.r#continue.clone());
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "list",
                    collection(&options, &r.field_selector),
                    None,
                )
                .await?;
            let remaining = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            // A bootstrapper sees only its own requests: its lists are filtered decoded.
            if form == ListItems::Encoded && !is_bootstrapper(&user) {
                let page = self
                    .registry
                    .list_encoded(&options)
                    .await
                    .map_err(status_of)?;
                return Ok(Response::new(api::ListResponse {
                    items: Vec::new(),
                    encoded_items: page.items,
                    resource_version: page.revision.to_string(),
                    r#continue: page.continue_token.unwrap_or_default(),
                    remaining_item_count: remaining(page.remaining),
                }));
            }
            let page = self.registry.list(&options).await.map_err(status_of)?;
            Ok(Response::new(api::ListResponse {
                items: page
                    .items
                    .into_iter()
                    .filter(|o| visible_to(&user, o))
                    .map(typed)
                    .collect(),
                encoded_items: Vec::new(),
                resource_version: page.revision.to_string(),
                r#continue: page.continue_token.unwrap_or_default(),
                remaining_item_count: remaining(page.remaining),
            }))
        }
        .await;
        audit.finish(result).await
    }

    /// `GET /metrics`: this master's own figures in the Prometheus text format (its watch
    /// cache's, its store's, its resident memory), for callers allowed `get` on the
    /// non-resource URL `/metrics`.
    pub(crate) async fn server_metrics(&self, request: Request<()>) -> Result<String, Status> {
        let mut audit = self.audit(&request, "get");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "get",
                Target::NonResource { path: "/metrics" },
                None,
            )
            .await?;
            let mut text = self
                .registry
                .watch_cache()
                .map(|cache| cache.stats().prometheus_text())
                .unwrap_or_default();
            text.push_str(&self.registry.store().metrics_text());
            if let Some(control) = &self.flow_control {
                text.push_str(&control.prometheus_text());
            }
            text.push_str(&process_text().await);
            Ok(text)
        }
        .await;
        audit.finish(result).await
    }

    /// pods/exec for both front doors (`Resources.Exec` and the REST WebSocket): checks
    /// `create` on pods/exec for the caller of `request` (whose message is unused),
    /// finds the pod's container and node, and opens the agent's exec stream, fed with
    /// `input`. The answer is the command's output, then its exit. Audited as a call.
    ///
    /// `opens` says when the agent's stream is opened (and the command started): at once,
    /// so that its failure is the call's, or at the output's first read (see
    /// [`CommandStart`]).
    ///
    /// The future is boxed as `Send` here, where its lifetimes are known: the gRPC
    /// trait method awaiting it could not prove that otherwise.
    pub(crate) fn exec_session<I>(
        &self,
        request: Request<()>,
        start: api::ExecStart,
        input: I,
        opens: CommandStart,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<ExecOutput, Status>> + Send + '_>>
    where
        I: Stream<Item = api::ExecRequest> + Send + 'static,
    {
        Box::pin(self.exec_session_inner(request, start, input, opens))
    }

    async fn exec_session_inner<I>(
        &self,
        request: Request<()>,
        start: api::ExecStart,
        input: I,
        opens: CommandStart,
    ) -> Result<ExecOutput, Status>
    where
        I: Stream<Item = api::ExecRequest> + Send + 'static,
    {
        let mut audit = self.audit_stream(&request, "create");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Pod)
                    .subresource("exec")
                    .namespace(&start.namespace)
                    .name(&start.name),
                None,
            )
            .await?;
            if start.name.is_empty() {
                return Err(Status::invalid_argument("the request names no pod"));
            }
            if start.command.is_empty() {
                return Err(Status::invalid_argument("the request names no command"));
            }
            let (target, endpoint) = self
                .pod_agent(&start.namespace, &start.name, Some(&start.container))
                .await?;
            let agent_start = rafter_proto::agent::ExecStart {
                namespace: start.namespace.clone(),
                pod_name: start.name.clone(),
                pod_uid: target.uid,
                container: target.container,
                command: start.command.clone(),
                stdin: start.stdin,
                tty: start.tty,
            };
            let tls = self.agent_tls.clone();
            let open = async move {
                pod_exec::open(&target.node, &endpoint, tls.as_ref(), agent_start, input).await
            };
            // Dropping this stream (the client went away) drops the agent's, which ends
            // the command.
            let relayed = |output: tonic::Streaming<api::ExecResponse>| {
                output.map(|message| {
                    message.map_err(|status| {
                        pod_logs::agent_status(Status::new(status.code(), status.message()))
                    })
                })
            };
            Ok(match opens {
                CommandStart::AtOnce => Box::pin(relayed(open.await?)) as ExecOutput,
                CommandStart::OnFirstRead => {
                    Box::pin(futures::stream::once(open).flat_map(move |opened| {
                        match opened {
                            Ok(output) => relayed(output).left_stream(),
                            Err(status) => {
                                futures::stream::once(futures::future::ready(Err(status)))
                                    .right_stream()
                            }
                        }
                    })) as ExecOutput
                }
            })
        }
        .await;
        audit.finish(result).await
    }

    /// Checks only that the caller of `request` may `create` pods/exec on the pod (for
    /// an exec request that will be refused for its protocol: the caller learns first
    /// whether it may exec at all). Audited as a call.
    pub(crate) async fn admit_exec(
        &self,
        request: Request<()>,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        self.admit_pod_stream(request, "exec", namespace, name)
            .await
    }

    /// As [`admit_exec`](Self::admit_exec), for `create` on pods/attach.
    pub(crate) async fn admit_attach(
        &self,
        request: Request<()>,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        self.admit_pod_stream(request, "attach", namespace, name)
            .await
    }

    /// As [`admit_exec`](Self::admit_exec), for `create` on pods/portforward (a front
    /// door that refuses a protocol, or one that checks before it upgrades).
    #[allow(dead_code, reason = "for the REST port-forward front door")]
    pub(crate) async fn admit_port_forward(
        &self,
        request: Request<()>,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        self.admit_pod_stream(request, "portforward", namespace, name)
            .await
    }

    async fn admit_pod_stream(
        &self,
        request: Request<()>,
        subresource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), Status> {
        let mut audit = self.audit_stream(&request, "create");
        let result = self
            .admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Pod)
                    .subresource(subresource)
                    .namespace(namespace)
                    .name(name),
                None,
            )
            .await
            .map(|_| ());
        audit.finish(result).await
    }

    /// pods/attach for both front doors (`Resources.Attach` and the REST WebSocket):
    /// checks `create` on pods/attach for the caller of `request` (whose message is
    /// unused), finds the pod's container and node, and opens the agent's attach stream,
    /// fed with `input` (stdin, resizes, the close of stdin). The answer is the
    /// container's output as it comes, then one exit when the attach ends (the
    /// container ended, or the agent's stream broke). Audited as a call. Boxed as
    /// [`exec_session`](Self::exec_session) is.
    pub(crate) fn attach_session<I>(
        &self,
        request: Request<()>,
        start: api::AttachStart,
        input: I,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<ExecOutput, Status>> + Send + '_>>
    where
        I: Stream<Item = api::AttachRequest> + Send + 'static,
    {
        Box::pin(self.attach_session_inner(request, start, input))
    }

    async fn attach_session_inner<I>(
        &self,
        request: Request<()>,
        start: api::AttachStart,
        input: I,
    ) -> Result<ExecOutput, Status>
    where
        I: Stream<Item = api::AttachRequest> + Send + 'static,
    {
        let mut audit = self.audit_stream(&request, "create");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Pod)
                    .subresource("attach")
                    .namespace(&start.namespace)
                    .name(&start.name),
                None,
            )
            .await?;
            if start.name.is_empty() {
                return Err(Status::invalid_argument("the request names no pod"));
            }
            let (target, endpoint) = self
                .pod_agent(&start.namespace, &start.name, Some(&start.container))
                .await?;
            let agent_start = rafter_proto::agent::AttachStart {
                namespace: start.namespace.clone(),
                pod_name: start.name.clone(),
                pod_uid: target.uid,
                container: target.container,
                stdin: start.stdin,
                tty: start.tty,
            };
            let output = pod_exec::open_attach(
                &target.node,
                &endpoint,
                self.agent_tls.as_ref(),
                agent_start,
                input,
            )
            .await?;
            // Dropping this stream (the client went away) drops the agent's: it detaches.
            let stream = output.map(|message| {
                message.map_err(|status| {
                    pod_logs::agent_status(Status::new(status.code(), status.message()))
                })
            });
            Ok(Box::pin(stream) as ExecOutput)
        }
        .await;
        audit.finish(result).await
    }

    /// pods/portforward for every front door (`Resources.PortForward`, and kubectl's
    /// through REST): checks `create` on pods/portforward for the caller of `request`
    /// (whose message is unused), finds the pod's node and opens one TCP connection to
    /// `start.port` inside the pod through its agent. `input` is the client's bytes to
    /// the pod's port; its end is the client's half-close (the pod's connection is shut
    /// for writing where the runtime can, and the answer goes on). The answer is the pod
    /// port's bytes; it ends when the pod's side closes, with an `Err` naming the pod and
    /// port when the connection could not be made or broke. Dropping the answer closes
    /// the connection. Audited as a call. Boxed as [`exec_session`](Self::exec_session)
    /// is.
    pub(crate) fn port_forward_session<I>(
        &self,
        request: Request<()>,
        start: api::PortForwardStart,
        input: I,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<PortForwardOutput, Status>> + Send + '_>>
    where
        I: Stream<Item = bytes::Bytes> + Send + 'static,
    {
        Box::pin(self.port_forward_session_inner(request, start, input))
    }

    async fn port_forward_session_inner<I>(
        &self,
        request: Request<()>,
        start: api::PortForwardStart,
        input: I,
    ) -> Result<PortForwardOutput, Status>
    where
        I: Stream<Item = bytes::Bytes> + Send + 'static,
    {
        let mut audit = self.audit_stream(&request, "create");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Pod)
                    .subresource("portforward")
                    .namespace(&start.namespace)
                    .name(&start.name),
                None,
            )
            .await?;
            if start.name.is_empty() {
                return Err(Status::invalid_argument("the request names no pod"));
            }
            if start.port == 0 || start.port > u32::from(u16::MAX) {
                return Err(Status::invalid_argument(format!(
                    "port {} is not a TCP port (1-65535)",
                    start.port
                )));
            }
            let (target, endpoint) = self.pod_agent(&start.namespace, &start.name, None).await?;
            let agent_start = rafter_proto::agent::PortForwardStart {
                namespace: start.namespace.clone(),
                pod_name: start.name.clone(),
                pod_uid: target.uid,
                port: start.port,
            };
            let output = pod_port_forward::open(
                &target.node,
                &endpoint,
                self.agent_tls.as_ref(),
                agent_start,
                input,
            )
            .await?;
            let stream = output.map(|message| match message {
                Ok(response) => Ok(bytes::Bytes::from(response.data)),
                Err(status) => Err(pod_logs::agent_status(Status::new(
                    status.code(),
                    status.message(),
                ))),
            });
            Ok(Box::pin(stream) as PortForwardOutput)
        }
        .await;
        audit.finish(result).await
    }

    /// The container, node and agent endpoint of pod `namespace/name` (as for logs);
    /// `container` None: any (the first), for what concerns the whole pod.
    async fn pod_agent(
        &self,
        namespace: &str,
        name: &str,
        container: Option<&str>,
    ) -> Result<(pod_logs::LogTarget, String), Status> {
        let pod = match self
            .registry
            .get(Kind::Pod, namespace, name, ReadConsistency::Serializable)
            .await
            .map_err(status_of)?
        {
            Object::Pod(pod) => pod,
            _ => {
                return Err(Status::internal(
                    "the store returned another kind for a pod",
                ))
            }
        };
        let first = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let container = container.unwrap_or(&first);
        let target = pod_logs::target(&pod, container).map_err(|e| e.status())?;
        let node = match self
            .registry
            .get(Kind::Node, "", &target.node, ReadConsistency::Serializable)
            .await
        {
            Ok(Object::Node(node)) => node,
            Ok(_) => {
                return Err(Status::internal(
                    "the store returned another kind for a node",
                ))
            }
            Err(RegistryError::NotFound { .. }) => {
                return Err(pod_logs::agent_status(Status::unavailable(format!(
                    "pod {namespace}/{name} is bound to node {}, which is not registered",
                    target.node
                ))))
            }
            Err(e) => return Err(status_of(e)),
        };
        let endpoint = pod_logs::endpoint(&node).map_err(|e| e.status())?;
        Ok((target, endpoint))
    }
}

#[tonic::async_trait]
impl<S: KvStore> Resources for ResourcesService<S> {
    async fn create(
        &self,
        request: Request<api::CreateRequest>,
    ) -> Result<Response<TypedObject>, Status> {
        let mut audit = self.audit(&request, "create");
        let result = async {
            let mut object = object_of(request.get_ref().object.clone())?;
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "create",
                    Target::resource(object.kind())
                        .namespace(&object.metadata().namespace)
                        .name(&object.metadata().name),
                    Some(&object),
                )
                .await?;
            stamp_requester(&mut object, &user);
            let dry_run = request.get_ref().dry_run;
            let manager = field_manager(&request.get_ref().field_manager, &user)?;
            let created = self
                .registry
                .create_as(object, dry_run, Some(&manager))
                .await
                .map_err(status_of)?;
            if !dry_run {
                record_workload_event(
                    &self.registry,
                    &created,
                    "Created",
                    "created through the API",
                );
            }
            Ok(Response::new(typed(created)))
        }
        .await;
        audit.finish(result).await
    }

    async fn get(
        &self,
        request: Request<api::GetRequest>,
    ) -> Result<Response<TypedObject>, Status> {
        let mut audit = self.audit(&request, "get");
        let result = async {
            let (kind, namespace, name) = key_of(request.get_ref().key.clone())?;
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "get",
                    Target::resource(kind).namespace(&namespace).name(&name),
                    None,
                )
                .await?;
            let consistency = consistency_of(request.get_ref().consistency);
            let object = self
                .registry
                .get(kind, &namespace, &name, consistency)
                .await
                .map_err(status_of)?;
            if !visible_to(&user, &object) {
                return Err(Status::permission_denied(format!(
                    "user {:?} may only read the certificatesigningrequests it filed, not {name:?}",
                    user.name
                )));
            }
            Ok(Response::new(typed(object)))
        }
        .await;
        audit.finish(result).await
    }

    async fn list(
        &self,
        request: Request<api::ListRequest>,
    ) -> Result<Response<api::ListResponse>, Status> {
        self.list_page(request, ListItems::Encoded).await
    }

    async fn update(
        &self,
        request: Request<api::UpdateRequest>,
    ) -> Result<Response<TypedObject>, Status> {
        let mut audit = self.audit(&request, "update");
        let result = async {
            let object = object_of(request.get_ref().object.clone())?;
            let subresource =
                Subresource::parse(&request.get_ref().subresource).map_err(status_of)?;
            let status = if subresource == Subresource::Status {
                "status"
            } else {
                ""
            };
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "update",
                    Target::resource(object.kind())
                        .subresource(status)
                        .namespace(&object.metadata().namespace)
                        .name(&object.metadata().name),
                    Some(&object),
                )
                .await?;
            let manager = field_manager(&request.get_ref().field_manager, &user)?;
            let updated = self
                .registry
                .update_as(
                    object,
                    subresource,
                    request.get_ref().dry_run,
                    Some(&manager),
                )
                .await
                .map_err(status_of)?;
            Ok(Response::new(typed(updated)))
        }
        .await;
        audit.finish(result).await
    }

    async fn patch(
        &self,
        request: Request<api::PatchRequest>,
    ) -> Result<Response<TypedObject>, Status> {
        let mut audit = self.audit(&request, "patch");
        let result = async {
            let r = request.get_ref();
            let (kind, namespace, name) = key_of(r.key.clone())?;
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "patch",
                    Target::resource(kind)
                        .subresource(&r.subresource)
                        .namespace(&namespace)
                        .name(&name),
                    None,
                )
                .await?;
            let manager = field_manager(&r.field_manager, &user)?;
            let subresource = Subresource::parse(&r.subresource).map_err(status_of)?;
            let patch_type = if r.r#type == api::PatchType::Strategic as i32 {
                PatchType::StrategicMerge
            } else {
                PatchType::Merge
            };
            let patch: serde_json::Value = serde_json::from_str(&r.patch)
                .map_err(|e| Status::invalid_argument(format!("the patch is not JSON: {e}")))?;
            if r.dry_run {
                let current = self
                    .registry
                    .get(kind, &namespace, &name, ReadConsistency::Linearizable)
                    .await
                    .map_err(status_of)?;
                let patched = patched_object(&current, patch_type, &patch)?;
                let checked = self
                    .registry
                    .update_as(patched, subresource, true, Some(&manager))
                    .await
                    .map_err(status_of)?;
                return Ok(Response::new(typed(checked)));
            }
            let mut patch_error = None;
            let result = self
                .registry
                .modify_as(
                    kind,
                    &namespace,
                    &name,
                    subresource,
                    Some(&manager),
                    |object| match patched_object(object, patch_type, &patch) {
                        Ok(mut patched) => {
                            // The read's resourceVersion guards the write unless the patch set its own.
                            if patched.metadata().resource_version.is_empty() {
                                patched.metadata_mut().resource_version =
                                    object.metadata().resource_version.clone();
                            }
                            *object = patched;
                            Ok(true)
                        }
                        Err(status) => {
                            patch_error = Some(status);
                            Err(RegistryError::BadRequest(
                                "the patch does not apply".to_owned(),
                            ))
                        }
                    },
                )
                .await;
            match (result, patch_error) {
                (_, Some(status)) => Err(status),
                (Ok(object), None) => Ok(Response::new(typed(object))),
                (Err(e), None) => Err(status_of(e)),
            }
        }
        .await;
        audit.finish(result).await
    }

    async fn delete(
        &self,
        request: Request<api::DeleteRequest>,
    ) -> Result<Response<api::DeleteResponse>, Status> {
        let mut audit = self.audit(&request, "delete");
        let result = async {
            let r = request.get_ref();
            let (kind, namespace, name) = key_of(r.key.clone())?;
            self.admit_caller(
                &mut audit,
                &request,
                "delete",
                Target::resource(kind).namespace(&namespace).name(&name),
                None,
            )
            .await?;
            let preconditions = r.preconditions.clone().unwrap_or_default();
            let options = DeleteOptions {
                grace_period_seconds: r.grace_period_seconds,
                propagation: Some(
                    Propagation::parse(&r.propagation_policy).map_err(|e| status_of(e.into()))?,
                ),
                precondition_uid: (!preconditions.uid.is_empty()).then_some(preconditions.uid),
                precondition_resource_version: (!preconditions.resource_version.is_empty())
                    .then_some(preconditions.resource_version),
            };
            let (object, deleted) = self
                .registry
                .delete(kind, &namespace, &name, &options, r.dry_run)
                .await
                .map_err(status_of)?;
            if !r.dry_run {
                let message = if deleted {
                    "deleted through the API"
                } else {
                    "deletion requested through the API"
                };
                record_workload_event(&self.registry, &object, "Deleted", message);
            }
            Ok(Response::new(api::DeleteResponse {
                object: Some(typed(object)),
                deleted,
            }))
        }
        .await;
        audit.finish(result).await
    }

    type WatchStream = BoxStream<api::WatchEvent>;

    async fn watch(
        &self,
        request: Request<api::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut audit = self.audit_stream(&request, "watch");
        let result = async {
            let r = request.get_ref();
            let options = list_options(
                &r.kind,
                &r.namespace,
                &r.label_selector,
                &r.field_selector,
                0,
            )?;
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "watch",
                    collection(&options, &r.field_selector),
                    None,
                )
                .await?;
            let from = (!r.resource_version.is_empty()).then(|| r.resource_version.clone());
            let bookmarks = r.allow_bookmarks;
            let events = self
                .registry
                .watch(options, from.as_deref())
                .await
                .map_err(status_of)?;
            let stream = async_stream::stream! {
                let mut events = events;
                let mut last = from.as_deref().and_then(|rv| rv.parse::<u64>().ok()).unwrap_or(0);
                let mut ticker = tokio::time::interval(BOOKMARK_INTERVAL);
                ticker.tick().await;
                loop {
                    tokio::select! {
                        next = events.next() => match next {
                            None => break,
                            Some(Err(e)) => { yield Err(status_of(e)); break; }
                            Some(Ok(event)) => {
                                last = last.max(event.revision);
                                if event.object.as_ref().is_some_and(|o| !visible_to(&user, o)) {
                                    continue;
                                }
                                let event_type = match event.event_type {
                                    WatchEventType::Added => api::EventType::Added,
                                    WatchEventType::Modified => api::EventType::Modified,
                                    WatchEventType::Deleted => api::EventType::Deleted,
                                    WatchEventType::Bookmark => api::EventType::Bookmark,
                                };
                                yield Ok(api::WatchEvent {
                                    r#type: event_type as i32,
                                    object: event.object.map(typed),
                                    resource_version: event.revision.to_string(),
                                });
                            }
                        },
                        _ = ticker.tick(), if bookmarks && last > 0 => {
                            yield Ok(api::WatchEvent {
                                r#type: api::EventType::Bookmark as i32,
                                object: None,
                                resource_version: last.to_string(),
                            });
                        }
                    }
                }
            };
            Ok(Response::new(Box::pin(stream) as Self::WatchStream))
        }
        .await;
        audit.finish(result).await
    }

    async fn bind(&self, request: Request<api::BindRequest>) -> Result<Response<v1::Pod>, Status> {
        let mut audit = self.audit(&request, "create");
        let result = async {
            let pod = request
                .get_ref()
                .binding
                .as_ref()
                .and_then(|b| b.metadata.clone())
                .unwrap_or_default();
            self.admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Pod)
                    .subresource("binding")
                    .namespace(&pod.namespace)
                    .name(&pod.name),
                None,
            )
            .await?;
            let binding = request
                .get_ref()
                .binding
                .clone()
                .ok_or_else(|| Status::invalid_argument("no binding given"))?;
            let meta = binding.metadata.unwrap_or_default();
            let target = binding.target.unwrap_or_default();
            if !target.kind.is_empty() && target.kind != "Node" {
                return Err(Status::invalid_argument(format!(
                    "a binding targets a Node, not a {}",
                    target.kind
                )));
            }
            let uid = (!meta.uid.is_empty()).then_some(meta.uid.as_str());
            let bound = self
                .registry
                .bind(&meta.namespace, &meta.name, &target.name, uid)
                .await
                .map_err(status_of)?;
            match bound {
                Object::Pod(pod) => Ok(Response::new(pod)),
                _ => Err(Status::internal("binding returned another kind")),
            }
        }
        .await;
        audit.finish(result).await
    }

    async fn evict(
        &self,
        request: Request<api::EvictRequest>,
    ) -> Result<Response<api::Empty>, Status> {
        let mut audit = self.audit(&request, "create");
        let result = async {
            let r = request.get_ref();
            self.admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Pod)
                    .subresource("eviction")
                    .namespace(&r.namespace)
                    .name(&r.name),
                None,
            )
            .await?;
            let options = DeleteOptions {
                grace_period_seconds: r.grace_period_seconds,
                ..Default::default()
            };
            self.registry
                .delete(Kind::Pod, &r.namespace, &r.name, &options, false)
                .await
                .map_err(status_of)?;
            Ok(Response::new(api::Empty {}))
        }
        .await;
        audit.finish(result).await
    }

    async fn get_scale(
        &self,
        request: Request<api::GetScaleRequest>,
    ) -> Result<Response<api::Scale>, Status> {
        let mut audit = self.audit(&request, "get");
        let result = async {
            let (kind, namespace, name) = key_of(request.get_ref().key.clone())?;
            self.admit_caller(
                &mut audit,
                &request,
                "get",
                Target::resource(kind)
                    .subresource("scale")
                    .namespace(&namespace)
                    .name(&name),
                None,
            )
            .await?;
            let object = self
                .registry
                .get(kind, &namespace, &name, ReadConsistency::Linearizable)
                .await
                .map_err(status_of)?;
            Ok(Response::new(scale_of(&object)?))
        }
        .await;
        audit.finish(result).await
    }

    async fn update_scale(
        &self,
        request: Request<api::UpdateScaleRequest>,
    ) -> Result<Response<api::Scale>, Status> {
        let mut audit = self.audit(&request, "update");
        let result = async {
            let r = request.get_ref();
            let (kind, namespace, name) = key_of(r.key.clone())?;
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "update",
                    Target::resource(kind)
                        .subresource("scale")
                        .namespace(&namespace)
                        .name(&name),
                    None,
                )
                .await?;
            let manager = field_manager(&r.field_manager, &user)?;
            if r.replicas < 0 {
                return Err(Status::invalid_argument(format!(
                    "replicas must be 0 or more, not {}",
                    r.replicas
                )));
            }
            let (replicas, expected) = (r.replicas, r.resource_version.clone());
            let mut wrong_kind = false;
            let object = self
                .registry
                .modify_as(
                    kind,
                    &namespace,
                    &name,
                    Subresource::Main,
                    Some(&manager),
                    |object| {
                        if !expected.is_empty() {
                            object.metadata_mut().resource_version = expected.clone();
                        }
                        match object {
                            Object::Deployment(d) => {
                                d.spec.get_or_insert_with(Default::default).replicas =
                                    Some(replicas)
                            }
                            Object::ReplicaSet(r) => {
                                r.spec.get_or_insert_with(Default::default).replicas =
                                    Some(replicas)
                            }
                            _ => {
                                wrong_kind = true;
                                return Ok(false);
                            }
                        }
                        Ok(true)
                    },
                )
                .await
                .map_err(status_of)?;
            if wrong_kind {
                return Err(Status::invalid_argument(format!(
                    "{kind} has no scale subresource; scale Deployments or ReplicaSets"
                )));
            }
            Ok(Response::new(scale_of(&object)?))
        }
        .await;
        audit.finish(result).await
    }

    async fn approve_certificate(
        &self,
        request: Request<api::CertificateApprovalRequest>,
    ) -> Result<Response<v1::CertificateSigningRequest>, Status> {
        let mut audit = self.audit(&request, "update");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "update",
                Target::resource(Kind::CertificateSigningRequest)
                    .subresource("approval")
                    .name(&request.get_ref().name),
                None,
            )
            .await?;
            let r = request.get_ref().clone();
            let (wanted, opposite) = if r.approve {
                ("Approved", "Denied")
            } else {
                ("Denied", "Approved")
            };
            let mut refused = None;
            let object = self
                .registry
                .modify(
                    Kind::CertificateSigningRequest,
                    "",
                    &r.name,
                    Subresource::Status,
                    |object| {
                        let Object::CertificateSigningRequest(csr) = object else {
                            return Ok(false);
                        };
                        let status = csr.status.get_or_insert_with(Default::default);
                        if status.conditions.iter().any(|c| c.r#type == opposite) {
                            refused = Some(format!(
                                "the request is already {opposite}; it cannot also be {wanted}"
                            ));
                            return Ok(false);
                        }
                        if status.conditions.iter().any(|c| c.r#type == wanted) {
                            return Ok(false);
                        }
                        let default_reason = if r.approve {
                            "RafterApprove"
                        } else {
                            "RafterDeny"
                        };
                        status.conditions.push(v1::Condition {
                            r#type: wanted.to_owned(),
                            status: "True".to_owned(),
                            reason: if r.reason.is_empty() {
                                default_reason.to_owned()
                            } else {
                                r.reason.clone()
                            },
                            message: r.message.clone(),
                            last_update_time: Some(now_rfc3339()),
                            last_transition_time: Some(now_rfc3339()),
                            ..Default::default()
                        });
                        Ok(true)
                    },
                )
                .await
                .map_err(status_of)?;
            if let Some(message) = refused {
                return Err(Status::failed_precondition(message));
            }
            match object {
                Object::CertificateSigningRequest(csr) => Ok(Response::new(csr)),
                _ => Err(Status::internal("approval returned another kind")),
            }
        }
        .await;
        audit.finish(result).await
    }

    type ExecStream = BoxStream<api::ExecResponse>;

    async fn exec(
        &self,
        request: Request<tonic::Streaming<api::ExecRequest>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let (metadata, extensions, mut inbound) = request.into_parts();
        let start = match inbound.message().await?.and_then(|m| m.msg) {
            Some(api::exec_request::Msg::Start(start)) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an exec stream must be its start",
                ))
            }
        };
        let request = Request::from_parts(metadata, extensions, ());
        let output = self
            .exec_session(
                request,
                start,
                later_messages(inbound),
                CommandStart::AtOnce,
            )
            .await?;
        Ok(Response::new(output))
    }

    type AttachStream = BoxStream<api::ExecResponse>;

    async fn attach(
        &self,
        request: Request<tonic::Streaming<api::AttachRequest>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let (metadata, extensions, mut inbound) = request.into_parts();
        let start = match inbound.message().await?.and_then(|m| m.msg) {
            Some(api::attach_request::Msg::Start(start)) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an attach stream must be its start",
                ))
            }
        };
        let request = Request::from_parts(metadata, extensions, ());
        let output = self
            .attach_session(request, start, later_messages(inbound))
            .await?;
        Ok(Response::new(output))
    }

    type PortForwardStream = BoxStream<api::PortForwardResponse>;

    async fn port_forward(
        &self,
        request: Request<tonic::Streaming<api::PortForwardRequest>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let (metadata, extensions, mut inbound) = request.into_parts();
        let start = match inbound.message().await?.and_then(|m| m.msg) {
            Some(api::port_forward_request::Msg::Start(start)) => start,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a port-forward stream must be its start",
                ))
            }
        };
        // The client's bytes until its stream ends (its half-close) or breaks; a second
        // start carries nothing.
        let input: Pin<Box<dyn Stream<Item = bytes::Bytes> + Send>> =
            Box::pin(futures::stream::unfold(inbound, |mut inbound| {
                Box::pin(async move {
                    loop {
                        match inbound.message().await {
                            Ok(Some(api::PortForwardRequest {
                                msg: Some(api::port_forward_request::Msg::Data(data)),
                            })) => return Some((bytes::Bytes::from(data), inbound)),
                            Ok(Some(_)) => continue,
                            Ok(None) | Err(_) => return None,
                        }
                    }
                })
            }));
        let request = Request::from_parts(metadata, extensions, ());
        let output = self.port_forward_session(request, start, input).await?;
        let output = output.map(|data| {
            data.map(|data| api::PortForwardResponse {
                data: data.to_vec(),
            })
        });
        Ok(Response::new(Box::pin(output)))
    }

    type LogsStream = BoxStream<api::LogChunk>;

    async fn logs(
        &self,
        request: Request<api::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let mut audit = self.audit_stream(&request, "get");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "get",
                Target::resource(Kind::Pod)
                    .subresource("log")
                    .namespace(&request.get_ref().namespace)
                    .name(&request.get_ref().name),
                None,
            )
            .await?;
            let r = request.into_inner();
            if r.name.is_empty() {
                return Err(Status::invalid_argument("the request names no pod"));
            }
            let pod = match self
                .registry
                .get(
                    Kind::Pod,
                    &r.namespace,
                    &r.name,
                    ReadConsistency::Serializable,
                )
                .await
                .map_err(status_of)?
            {
                Object::Pod(pod) => pod,
                _ => {
                    return Err(Status::internal(
                        "the store returned another kind for a pod",
                    ))
                }
            };
            let target = pod_logs::target(&pod, &r.container).map_err(|e| e.status())?;
            let node = match self
                .registry
                .get(Kind::Node, "", &target.node, ReadConsistency::Serializable)
                .await
            {
                Ok(Object::Node(node)) => node,
                Ok(_) => {
                    return Err(Status::internal(
                        "the store returned another kind for a node",
                    ))
                }
                Err(RegistryError::NotFound { .. }) => {
                    return Err(pod_logs::agent_status(Status::unavailable(format!(
                        "pod {}/{} is bound to node {}, which is not registered",
                        r.namespace, r.name, target.node
                    ))))
                }
                Err(e) => return Err(status_of(e)),
            };
            let endpoint = pod_logs::endpoint(&node).map_err(|e| e.status())?;
            let agent_request = rafter_proto::agent::LogsRequest {
                namespace: r.namespace.clone(),
                pod_name: r.name.clone(),
                pod_uid: target.uid,
                container: target.container,
                follow: r.follow,
                previous: r.previous,
                tail_lines: r.tail_lines,
            };
            let chunks = pod_logs::open(
                &target.node,
                &endpoint,
                self.agent_tls.as_ref(),
                agent_request,
            )
            .await?;
            // Dropping this stream (the client went away) drops the agent's stream with it.
            let stream = chunks.map(|chunk| match chunk {
                Ok(chunk) => Ok(api::LogChunk { data: chunk.data }),
                Err(status) => Err(pod_logs::agent_status(Status::new(
                    status.code(),
                    status.message(),
                ))),
            });
            Ok(Response::new(Box::pin(stream) as Self::LogsStream))
        }
        .await;
        audit.finish(result).await
    }

    async fn review_access(
        &self,
        request: Request<api::AccessReviewRequest>,
    ) -> Result<Response<api::AccessReviewResponse>, Status> {
        let mut audit = self.audit(&request, "create");
        let result = async {
            let review = if request.get_ref().user.is_empty() {
                "selfsubjectaccessreviews"
            } else {
                "subjectaccessreviews"
            };
            audit.resource("create", "authorization.k8s.io", review);
            let caller = caller(
                &self.authenticator,
                self.authorizer.as_ref(),
                &mut audit,
                &request,
            )
            .await?;
            let r = request.into_inner();
            let subject = if r.user.is_empty() {
                caller
            } else {
                // Asking about someone else is a SubjectAccessReview.
                let asking = Attributes::non_resource(&caller, "create", SUBJECT_ACCESS_REVIEWS);
                authorize(self.authorizer.as_ref(), &asking)?;
                UserInfo::new(r.user.clone(), r.groups.clone())
            };
            let target = if r.non_resource_path.is_empty() {
                Target::resource(kind_of(&r.kind)?)
                    .subresource(&r.subresource)
                    .namespace(&r.namespace)
                    .name(&r.name)
            } else {
                Target::NonResource {
                    path: &r.non_resource_path,
                }
            };
            let attributes = Attributes {
                user: &subject,
                verb: &r.verb,
                target,
                object: None,
            };
            let (allowed, reason) = match self.authorizer.authorize(&attributes) {
                Decision::Allow => (true, String::new()),
                Decision::Deny(why) => (false, why),
                Decision::NoOpinion => (false, attributes.forbidden()),
            };
            Ok(Response::new(api::AccessReviewResponse {
                allowed,
                reason,
                user: subject.name.clone(),
            }))
        }
        .await;
        audit.finish(result).await
    }

    async fn review_rules(
        &self,
        request: Request<api::RulesReviewRequest>,
    ) -> Result<Response<api::RulesReviewResponse>, Status> {
        let mut audit = self.audit(&request, "create");
        let result = async {
            audit.resource("create", "authorization.k8s.io", "selfsubjectrulesreviews");
            let user = caller(
                &self.authenticator,
                self.authorizer.as_ref(),
                &mut audit,
                &request,
            )
            .await?;
            let rules = self.authorizer.rules(&user, &request.get_ref().namespace);
            Ok(Response::new(api::RulesReviewResponse {
                resource_rules: rules.resource_rules,
                non_resource_rules: rules.non_resource_rules,
                incomplete: !rules.incomplete.is_empty(),
                evaluation_error: rules.incomplete.join("; "),
                user: user.name,
            }))
        }
        .await;
        audit.finish(result).await
    }

    async fn create_token(
        &self,
        request: Request<api::TokenRequest>,
    ) -> Result<Response<api::TokenResponse>, Status> {
        let mut audit = self.audit(&request, "create");
        let result = async {
            let r = request.get_ref();
            let user = self
                .admit_caller(
                    &mut audit,
                    &request,
                    "create",
                    Target::resource(Kind::ServiceAccount)
                        .subresource("token")
                        .namespace(&r.namespace)
                        .name(&r.service_account),
                    None,
                )
                .await?;
            let answer = token_request::issue(
                &self.registry,
                self.token_keys.as_deref(),
                &user,
                request.get_ref(),
            )
            .await?;
            Ok(Response::new(answer))
        }
        .await;
        audit.finish(result).await
    }

    type ImportImageStream = BoxStream<api::ImageImportEvent>;

    async fn import_image(
        &self,
        request: Request<tonic::Streaming<api::ImageImportRequest>>,
    ) -> Result<Response<Self::ImportImageStream>, Status> {
        let mut audit = self.audit_stream(&request, "create");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "create",
                Target::resource(Kind::Node).subresource("images"),
                None,
            )
            .await?;
            let mut pieces = request.into_inner();
            let first = pieces
                .message()
                .await?
                .ok_or_else(|| Status::invalid_argument("the import sent no archive"))?;
            if first.file_name.is_empty() {
                return Err(Status::invalid_argument(
                    "the import's first message names no archive",
                ));
            }
            let nodes: Vec<v1::Node> = self
                .nodes("")
                .await?
                .into_iter()
                .filter(node_images::is_ready)
                .collect();
            if nodes.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "no node is Ready to import {} into",
                    first.file_name
                )));
            }
            let events = node_images::import(nodes, self.agent_tls.clone(), first, pieces);
            Ok(Response::new(Box::pin(events) as Self::ImportImageStream))
        }
        .await;
        audit.finish(result).await
    }

    async fn images(
        &self,
        request: Request<api::ImagesRequest>,
    ) -> Result<Response<api::ImagesResponse>, Status> {
        let mut audit = self.audit(&request, "get");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "get",
                Target::resource(Kind::Node)
                    .subresource("images")
                    .name(&request.get_ref().node),
                None,
            )
            .await?;
            let nodes = self.nodes(&request.get_ref().node).await?;
            Ok(Response::new(
                node_images::list_all(nodes, self.agent_tls.as_ref()).await,
            ))
        }
        .await;
        audit.finish(result).await
    }

    async fn metrics(
        &self,
        request: Request<api::MetricsRequest>,
    ) -> Result<Response<api::MetricsResponse>, Status> {
        let mut audit = self.audit(&request, "get");
        let result = async {
            self.admit_caller(
                &mut audit,
                &request,
                "get",
                Target::resource(Kind::Node).subresource("metrics"),
                None,
            )
            .await?;
            let nodes = self.nodes(&request.get_ref().node).await?;
            Ok(Response::new(
                node_metrics::scrape_all(nodes, self.agent_tls.as_ref()).await,
            ))
        }
        .await;
        audit.finish(result).await
    }
}

/// Kinds whose creation and deletion through the API leave an Event.
const WORKLOAD_KINDS: &[Kind] = &[
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::DaemonSet,
    Kind::Job,
];

/// Records an Event about a workload, in the background: the caller's answer never waits
/// for it, and a failure to record is logged, not returned.
fn record_workload_event<S: KvStore>(
    registry: &Registry<S>,
    object: &Object,
    reason: &str,
    message: &str,
) {
    if !WORKLOAD_KINDS.contains(&object.kind()) {
        return;
    }
    let meta = object.metadata();
    let info = object.kind().info();
    let now = now_rfc3339();
    let event = Object::Event(v1::Event {
        metadata: Some(v1::ObjectMeta {
            generate_name: format!("{}.", meta.name),
            namespace: meta.namespace.clone(),
            ..Default::default()
        }),
        involved_object: Some(v1::ObjectReference {
            kind: info.name.to_owned(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            api_version: info.api_version(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        }),
        reason: reason.to_owned(),
        message: format!("{} {} {message}", info.name, meta.name),
        source: Some(v1::EventSource {
            component: "rafter-apiserver".to_owned(),
            host: String::new(),
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: 1,
        r#type: "Normal".to_owned(),
        reporting_component: "rafter-apiserver".to_owned(),
        ..Default::default()
    });
    let registry = registry.clone();
    tokio::spawn(async move {
        if let Err(e) = registry.create(event, false).await {
            tracing::warn!(error = %e, "could not record an event");
        }
    });
}

fn patched_object(
    current: &Object,
    patch_type: PatchType,
    patch: &serde_json::Value,
) -> Result<Object, Status> {
    let kind = current.kind();
    let original = current
        .to_json_value()
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut merged = apply_patch(patch_type, &original, patch)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    // Identity is not patchable: the object stays where it is.
    for field in ["apiVersion", "kind"] {
        if let (Some(map), Some(value)) = (merged.as_object_mut(), original.get(field)) {
            map.insert(field.to_owned(), value.clone());
        }
    }
    let patched = Object::from_json_value(kind, merged).map_err(|e| {
        Status::invalid_argument(format!("the patched object is not a valid {kind}: {e}"))
    })?;
    let (old, new) = (current.metadata(), patched.metadata());
    if old.name != new.name || old.namespace != new.namespace {
        return Err(Status::invalid_argument(
            "a patch cannot change metadata.name or metadata.namespace",
        ));
    }
    Ok(patched)
}

fn scale_of(object: &Object) -> Result<api::Scale, Status> {
    let meta = object.metadata();
    let key = api::ObjectKey {
        kind: object.kind().name().to_owned(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    };
    let (replicas, status_replicas, selector) = match object {
        Object::Deployment(d) => {
            let spec = d.spec.clone().unwrap_or_default();
            (
                spec.replicas.unwrap_or(1),
                d.status.as_ref().map_or(0, |s| s.replicas),
                spec.selector,
            )
        }
        Object::ReplicaSet(r) => {
            let spec = r.spec.clone().unwrap_or_default();
            (
                spec.replicas.unwrap_or(1),
                r.status.as_ref().map_or(0, |s| s.replicas),
                spec.selector,
            )
        }
        other => {
            return Err(Status::invalid_argument(format!(
                "{} has no scale subresource; scale Deployments or ReplicaSets",
                other.kind()
            )))
        }
    };
    let selector = match selector {
        Some(s) => Selector::from_label_selector(&s)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        None => String::new(),
    };
    Ok(api::Scale {
        key: Some(key),
        replicas,
        status_replicas,
        selector,
        resource_version: meta.resource_version.clone(),
    })
}
