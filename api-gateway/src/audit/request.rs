//! [`Auditor`] and [`Audit`]: the seam between the services and the log. A handler starts
//! an [`Audit`] when a call arrives, admission fills in who asked for what, and the handler
//! finishes it with its result: one [`Event`] per call, written (through
//! `spawn_blocking`, the file is synced) before the answer is returned.

use std::sync::Arc;

use rafter_proto::{Kind, Object, Timestamp};
use tonic::codegen::http;
use tonic::Code;

use super::{AuditLog, Event, Level, ObjectRef, Policy, Request, ResponseStatus, Stage, UserRef};
use crate::auth::UserInfo;
use crate::authz::Target;

/// The user an unauthenticated call is recorded as.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group an unauthenticated call is recorded in.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The HTTP/2 path of a call (`/rafter.api.v1.Resources/Create`), which the server puts
/// in the call's extensions when it audits (tonic hands handlers no URI).
#[derive(Debug, Clone)]
pub(crate) struct CallPath(pub(crate) String);

impl CallPath {
    /// `request` with its path in its extensions.
    pub(crate) fn insert<B>(mut request: http::Request<B>) -> http::Request<B> {
        let path = CallPath(request.uri().path().to_owned());
        request.extensions_mut().insert(path);
        request
    }
}

/// Records the calls of a gateway: a [`Policy`] over an [`AuditLog`].
pub struct Auditor {
    log: Arc<AuditLog>,
    policy: Policy,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Records into `log` what `policy` says.
    pub fn new(log: AuditLog, policy: Policy) -> Auditor {
        Auditor {
            log: Arc::new(log),
            policy,
        }
    }

    /// Appends `event` on a blocking thread and waits until it is synced. A record that
    /// cannot be written is logged as an error; the call is answered anyway.
    async fn write(&self, event: Event) {
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || log.record(&event)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not write an audit record"),
            Err(e) => tracing::error!(error = %e, "the audit writer failed"),
        }
    }
}

/// The HTTP-style code Kubernetes records for a call's answer: 200 (201 for a successful
/// `create`), or the code of a gRPC error (403 refused, 401 unauthenticated, 404, 409,
/// 422 invalid ...).
pub fn response_code(verb: &str, result: Result<(), Code>) -> u16 {
    match result {
        Ok(()) if verb == "create" => 201,
        Ok(()) => 200,
        Err(code) => match code {
            Code::Ok => 200,
            Code::InvalidArgument => 422,
            Code::FailedPrecondition => 400,
            Code::Unauthenticated => 401,
            Code::PermissionDenied => 403,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::OutOfRange => 410,
            Code::ResourceExhausted => 413,
            Code::Cancelled => 499,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::DeadlineExceeded => 504,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
        },
    }
}

/// What admission learnt about a call.
#[derive(Debug, Default)]
struct Attributes {
    user: Option<UserRef>,
    impersonated: Option<UserRef>,
    verb: Option<String>,
    group: String,
    object_ref: Option<ObjectRef>,
    request_object: Option<serde_json::Value>,
}

#[derive(Debug)]
struct Pending {
    auditor: Arc<Auditor>,
    stage: Stage,
    request_uri: String,
    verb: String,
    source_ip: Option<String>,
    received: String,
    attributes: Attributes,
}

/// The audit record of one call, under construction; inert when the gateway has no
/// audit log.
#[derive(Debug)]
pub(crate) struct Audit(Option<Box<Pending>>);

impl Audit {
    /// The record of `request`, whose verb is `verb` until admission says otherwise,
    /// recorded at `stage` (ResponseComplete, or ResponseStarted for streams).
    pub(crate) fn begin<T>(
        auditor: Option<&Arc<Auditor>>,
        request: &tonic::Request<T>,
        verb: &str,
        stage: Stage,
    ) -> Audit {
        let Some(auditor) = auditor else {
            return Audit(None);
        };
        let request_uri = request
            .extensions()
            .get::<CallPath>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        Audit(Some(Box::new(Pending {
            auditor: auditor.clone(),
            stage,
            request_uri,
            verb: verb.to_owned(),
            source_ip: request.remote_addr().map(|a| a.ip().to_string()),
            received: Timestamp::now().to_rfc3339_micros(),
            attributes: Attributes::default(),
        })))
    }

    /// Authentication is under way: until [`Audit::user`], the caller is recorded as
    /// `system:anonymous` (a call that fails before authentication has no user).
    pub(crate) fn anonymous(&mut self) {
        if let Some(p) = &mut self.0 {
            p.attributes.user = Some(UserRef {
                username: ANONYMOUS_USER.to_owned(),
                groups: vec![UNAUTHENTICATED_GROUP.to_owned()],
            });
        }
    }

    /// The authenticated caller.
    pub(crate) fn user(&mut self, user: &UserInfo) {
        if let Some(p) = &mut self.0 {
            p.attributes.user = Some(UserRef {
                username: user.name.clone(),
                groups: user.groups.clone(),
            });
        }
    }

    /// The user the caller acts as (impersonation); the caller stays the `user`.
    pub(crate) fn impersonated(&mut self, user: &UserInfo) {
        if let Some(p) = &mut self.0 {
            p.attributes.impersonated = Some(UserRef {
                username: user.name.clone(),
                groups: user.groups.clone(),
            });
        }
    }

    /// What the call asks for, as authorization sees it, and the object it sends (kept
    /// only when the policy records this call at level Request, never a Secret's or a
    /// ConfigMap's).
    pub(crate) fn target(&mut self, verb: &str, target: &Target<'_>, object: Option<&Object>) {
        let Some(p) = &mut self.0 else {
            return;
        };
        p.attributes.verb = Some(verb.to_owned());
        match target {
            Target::Resource {
                kind,
                subresource,
                namespace,
                name,
                ..
            } => {
                let info = kind.info();
                p.attributes.group = info.group.to_owned();
                p.attributes.object_ref = Some(ObjectRef {
                    resource: info.plural.to_owned(),
                    namespace: (*namespace).to_owned(),
                    name: (*name).to_owned(),
                    api_group: info.group.to_owned(),
                    subresource: (*subresource).to_owned(),
                });
                let keeps_body =
                    !matches!(kind, Kind::Secret | Kind::ConfigMap) && p.level() == Level::Request;
                if keeps_body {
                    p.attributes.request_object = object.and_then(|o| o.to_json_value().ok());
                }
            }
            Target::Principal { resource, name } => {
                p.attributes.group.clear();
                p.attributes.object_ref = Some(ObjectRef {
                    resource: (*resource).to_owned(),
                    name: (*name).to_owned(),
                    ..ObjectRef::default()
                });
            }
            Target::NonResource { .. } => {
                p.attributes.group.clear();
                p.attributes.object_ref = None;
            }
        }
    }

    /// A resource outside the kinds of `Target` (access reviews).
    pub(crate) fn resource(&mut self, verb: &str, group: &str, resource: &str) {
        if let Some(p) = &mut self.0 {
            p.attributes.verb = Some(verb.to_owned());
            p.attributes.group = group.to_owned();
            p.attributes.object_ref = Some(ObjectRef {
                resource: resource.to_owned(),
                api_group: group.to_owned(),
                ..ObjectRef::default()
            });
        }
    }

    /// Records the call with `result`'s code (when the policy says so) and returns it.
    pub(crate) async fn finish<T>(
        self,
        result: Result<T, tonic::Status>,
    ) -> Result<T, tonic::Status> {
        if let Some(pending) = self.0 {
            let throttled = result.as_ref().is_err_and(|s| {
                s.metadata()
                    .get(rafter_proto::well_known::TOO_MANY_REQUESTS_METADATA)
                    .is_some()
            });
            let code = if throttled {
                429
            } else {
                response_code(
                    pending.verb(),
                    result.as_ref().map(|_| ()).map_err(|s| s.code()),
                )
            };
            if let Some(event) = pending.event(code) {
                pending.auditor.write(event).await;
            }
        }
        result
    }
}

impl Pending {
    fn verb(&self) -> &str {
        self.attributes.verb.as_deref().unwrap_or(&self.verb)
    }

    fn user(&self) -> UserRef {
        self.attributes.user.clone().unwrap_or_default()
    }

    fn level(&self) -> Level {
        let user = self.user();
        let object_ref = self.attributes.object_ref.as_ref();
        self.auditor.policy.level(&Request {
            user: &user.username,
            groups: &user.groups,
            verb: self.verb(),
            group: &self.attributes.group,
            resource: object_ref.map_or("", |o| o.resource.as_str()),
            namespace: object_ref.map_or("", |o| o.namespace.as_str()),
        })
    }

    /// The event, or `None` when the policy leaves the call out.
    fn event(&self, code: u16) -> Option<Event> {
        let level = self.level();
        if level == Level::None {
            return None;
        }
        let mut event = Event::new(
            level,
            uuid::Uuid::new_v4().to_string(),
            self.stage,
            self.verb(),
            self.user(),
            self.source_ip.clone(),
            self.attributes.object_ref.clone(),
            self.received.clone(),
        );
        event.request_uri = self.request_uri.clone();
        event.impersonated_user = self.attributes.impersonated.clone();
        event.stage_timestamp = Timestamp::now().to_rfc3339_micros();
        event.response_status = Some(ResponseStatus { code });
        if level == Level::Request {
            event.request_object = self.attributes.request_object.clone();
        }
        Some(event)
    }
}
