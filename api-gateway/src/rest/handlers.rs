//! Each REST verb and subresource onto the gRPC service: the request is translated into
//! the service's own typed request (with the caller's credentials, `convert::Call::grpc`)
//! and the answer back into Kubernetes JSON, a Table, watch lines, log text or a Status.
//!
//! ```text
//!  GET    …/<res>               list (or watch with ?watch=true)    Resources::list / watch
//!  GET    …/<res>/<name>         get (also …/status)                 Resources::get
//!  POST   …/<res>                create                              Resources::create
//!  PUT    …/<res>/<name>[/status] update                             Resources::update
//!  PATCH  …/<res>/<name>[/status] merge, strategic: Resources::patch; JSON patch and
//!                                 apply: get, patch here, update (or create) with the
//!                                 read's resourceVersion
//!  DELETE …/<res>/<name>         delete (DeleteOptions in body or query)
//!  …/scale  GET/PUT/PATCH        get_scale / update_scale (autoscaling/v1 Scale)
//!  …/pods/<p>/log                logs (text, chunked while following)
//!  …/pods/<p>/exec               WebSocket upgrade, relayed by `exec` (exec_session)
//!  …/pods/<p>/exec, …/attach     also SPDY/3.1, relayed by `exec_spdy`
//!  …/pods/<p>/attach             WebSocket upgrade, relayed by `exec` (attach_session)
//!  …/pods/<p>/portforward        SPDY/3.1, or SPDY in WebSocket: `portforward` (port_forward_session)
//!  …/pods/<p>/binding, POST …/bindings   bind;  …/pods/<p>/eviction   evict
//!  …/certificatesigningrequests/<n>/approval PUT   approve_certificate
//!  authorization.k8s.io reviews   review_access / review_rules
//! ```
//!
//! Owns the translation only: every decision (who, whether, what is stored) is the
//! service's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use rafter_proto::api::resources_server::Resources;
use rafter_proto::api::{self, ObjectKey, TypedObject};
use rafter_proto::{Kind, Object};
use serde_json::{json, Value};

use super::convert::{
    body_value, full, json_response, list_body, object_json, object_of, object_of_body,
    object_response, read_body, response, subject, Call,
};
use super::errors::{success, ApiError, Subject};
use super::metrics::MetricsPath;
use super::route::{self, ResourcePath, Review, Route};
use super::{discovery, exec, metrics, openapi, portforward, table, watch, Body, Peer};
use crate::managed_fields::{self, ManagedFieldsError, Writer};
use crate::registry::now_rfc3339;
use crate::server::MAX_REQUEST_BYTES;
use crate::service::{ListItems, ResourcesService};
use crate::store::KvStore;

/// How long a call the service answered Unavailable (no leader yet) is made again.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// How often a JSON patch or an apply is retried when the object changed between its
/// read and its write.
const PATCH_ATTEMPTS: usize = 5;

type Answer = Result<http::Response<Body>, ApiError>;

/// The REST API over one service.
pub(crate) struct Rest<S> {
    service: Arc<ResourcesService<S>>,
}

impl<S: KvStore> Rest<S> {
    /// The REST API over `service`.
    pub(crate) fn new(service: Arc<ResourcesService<S>>) -> Rest<S> {
        Rest { service }
    }

    /// Answers one request.
    pub(crate) async fn handle(
        &self,
        request: http::Request<Incoming>,
        peer: Peer,
    ) -> http::Response<Body> {
        if let Route::Resource(path) = route::parse(request.uri().path()) {
            if exec::is_exec(&path) {
                return exec::exec(&self.service, request, peer, path).await;
            }
            if exec::is_attach(&path) {
                return exec::attach(&self.service, request, peer, path).await;
            }
            if portforward::is_port_forward(&path) {
                return portforward::port_forward(self.service.clone(), request, peer, path).await;
            }
        }
        let (parts, body) = request.into_parts();
        let call = Call::new(&parts, peer);
        let body = match read_body(body, MAX_REQUEST_BYTES).await {
            Ok(body) => body,
            Err(error) => return error.into_response(),
        };
        // While the masters elect a leader the service answers Unavailable, which it does
        // only for calls it did not carry out: the call is made again for a while, as a
        // Kubernetes apiserver waits for its etcd, rather than failing kubectl at once.
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        let mut delay = Duration::from_millis(50);
        loop {
            match self.dispatch(&call, &body).await {
                Ok(answer) => return answer,
                Err(error)
                    if error.code == 503 && tokio::time::Instant::now() + delay < deadline =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(error) => return error.into_response(),
            }
        }
    }

    async fn dispatch(&self, call: &Call, body: &Bytes) -> Answer {
        let route = route::parse(&call.path);
        let read_only = matches!(
            route,
            Route::Version
                | Route::Health
                | Route::ServerMetrics
                | Route::CoreVersions
                | Route::Groups
                | Route::Group(_)
                | Route::Resources { .. }
                | Route::OpenApiV2
                | Route::OpenApiV3Index
                | Route::OpenApiV3 { .. }
                | Route::Metrics(_)
        );
        if read_only && call.method != http::Method::GET && call.method != http::Method::HEAD {
            return Err(ApiError::method_not_allowed(call.method.as_str()));
        }
        match route {
            Route::Version => Ok(json_response(200, &discovery::version())),
            Route::Health => Ok(response(200, "text/plain", full("ok"))),
            Route::ServerMetrics => {
                let text = self
                    .service
                    .server_metrics(call.grpc(()))
                    .await
                    .map_err(|s| ApiError::from_status(&s, &Subject::default()))?;
                Ok(response(200, "text/plain; version=0.0.4", full(text)))
            }
            Route::CoreVersions => Ok(json_response(200, &discovery::core_versions())),
            Route::Groups => Ok(json_response(200, &discovery::groups())),
            Route::Group(name) => discovery::group(&name)
                .map(|g| json_response(200, &g))
                .ok_or_else(ApiError::no_such_path),
            Route::Resources { group, version } => {
                Ok(json_response(200, &discovery::resources(&group, &version)))
            }
            Route::OpenApiV2 => Ok(openapi::v2(call.header("accept"))),
            Route::OpenApiV3Index => Ok(json_response(200, &openapi::v3_index())),
            Route::OpenApiV3 { group, version } => openapi::v3(&group, &version)
                .map(|doc| json_response(200, &doc))
                .ok_or_else(ApiError::no_such_path),
            Route::Review(review) => self.review(call, body, review).await,
            Route::Metrics(path) => self.metrics(call, &path).await,
            Route::Resource(path) => self.resource(call, body, path).await,
            Route::Unknown | Route::UnknownResource { .. } => Err(ApiError::no_such_path()),
        }
    }

    async fn resource(&self, call: &Call, body: &Bytes, path: ResourcePath) -> Answer {
        use http::Method;
        let sub = path.subresource.as_deref().unwrap_or("");
        let named = path.name.is_some();
        match (&call.method, named, sub) {
            (&Method::GET, false, "") if call.flag("watch") => self.watch(call, &path).await,
            (&Method::GET, false, "") => self.list(call, &path).await,
            (&Method::GET, true, "" | "status") => self.get(call, &path).await,
            (&Method::POST, false, "") if path.kind == Kind::Binding => {
                let value = body_value(body, call.content_type())?;
                self.bind(call, &path, value).await
            }
            (&Method::POST, false, "") => {
                let object = sent_object(call, &path, body)?;
                self.create(call, &path, object).await
            }
            (&Method::PUT, true, "" | "status") => {
                let object = sent_object(call, &path, body)?;
                self.update(call, &path, object).await
            }
            (&Method::PATCH, true, "" | "status") => {
                let bytes = body;
                self.patch(call, &path, bytes).await
            }
            (&Method::DELETE, true, "") => {
                let bytes = body;
                self.delete(call, &path, bytes).await
            }
            (&Method::GET, true, "scale") => self.get_scale(call, &path).await,
            (&Method::PUT | &Method::PATCH, true, "scale") => {
                let bytes = body;
                self.update_scale(call, &path, bytes).await
            }
            (&Method::GET, true, "log") if path.kind == Kind::Pod => self.logs(call, &path).await,
            (&Method::POST, true, "binding") if path.kind == Kind::Pod => {
                let value = body_value(body, call.content_type())?;
                self.bind(call, &path, value).await
            }
            (&Method::POST, true, "eviction") if path.kind == Kind::Pod => {
                let value = body_value(body, call.content_type())?;
                self.evict(call, &path, value).await
            }
            (&Method::PUT, true, "approval") if path.kind == Kind::CertificateSigningRequest => {
                let value = body_value(body, call.content_type())?;
                self.approve(call, &path, value).await
            }
            (&Method::GET, true, "approval") if path.kind == Kind::CertificateSigningRequest => {
                self.get(call, &path).await
            }
            (method, _, _) => Err(ApiError::method_not_allowed(&format!(
                "{method} {}",
                call.path
            ))),
        }
    }

    fn key(path: &ResourcePath) -> ObjectKey {
        ObjectKey {
            kind: path.kind.name().to_owned(),
            namespace: path.namespace.clone().unwrap_or_default(),
            name: path.name.clone().unwrap_or_default(),
        }
    }

    fn subject(path: &ResourcePath) -> Subject {
        subject(path.kind, path.name.as_deref())
    }

    /// An object answer, as a one-row Table when the caller asks for one.
    fn object_answer(call: &Call, kind: Kind, code: u16, typed: TypedObject) -> Answer {
        if table::wanted(call.header("accept")) {
            let value = object_json(typed)?;
            return Ok(json_response(200, &table::of_value(kind, value)));
        }
        object_response(code, typed)
    }

    async fn get(&self, call: &Call, path: &ResourcePath) -> Answer {
        let consistency = if call.param("resourceVersion") == "0" {
            api::Consistency::Serializable
        } else {
            api::Consistency::Linearizable
        };
        let request = call.grpc(api::GetRequest {
            key: Some(Self::key(path)),
            consistency: consistency as i32,
        });
        let object = answered(self.service.get(request).await, path)?;
        Self::object_answer(call, path.kind, 200, object)
    }

    async fn list(&self, call: &Call, path: &ResourcePath) -> Answer {
        let consistency = match (
            call.param("resourceVersion"),
            call.param("resourceVersionMatch"),
        ) {
            ("0", _) | (_, "NotOlderThan") => api::Consistency::Serializable,
            _ => api::Consistency::Linearizable,
        };
        let request = call.grpc(api::ListRequest {
            kind: path.kind.name().to_owned(),
            namespace: path.namespace.clone().unwrap_or_default(),
            label_selector: call.param("labelSelector").to_owned(),
            field_selector: call.param("fieldSelector").to_owned(),
            limit: call.int("limit")?.unwrap_or(0),
            r#continue: call.param("continue").to_owned(),
            consistency: consistency as i32,
        });
        let list = answered(
            self.service.list_page(request, ListItems::Decoded).await,
            path,
        )?;
        if !table::wanted(call.header("accept")) {
            let body = list_body(
                path.kind,
                list.items,
                &list.resource_version,
                &list.r#continue,
                list.remaining_item_count,
            );
            return Ok(response(200, "application/json", body));
        }
        let mut objects = Vec::with_capacity(list.items.len());
        for item in list.items {
            let object = Object::try_from(item.clone())
                .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
            objects.push((object, object_json(item)?));
        }
        let body = table::table(path.kind, objects, &list.resource_version, &list.r#continue);
        Ok(json_response(200, &body))
    }

    async fn watch(&self, call: &Call, path: &ResourcePath) -> Answer {
        // "0" (or none) starts with the current objects as ADDED events, as Kubernetes does.
        let from = match call.param("resourceVersion") {
            "0" => String::new(),
            other => other.to_owned(),
        };
        let request = call.grpc(api::WatchRequest {
            kind: path.kind.name().to_owned(),
            namespace: path.namespace.clone().unwrap_or_default(),
            label_selector: call.param("labelSelector").to_owned(),
            field_selector: call.param("fieldSelector").to_owned(),
            resource_version: from,
            allow_bookmarks: call.flag("allowWatchBookmarks"),
        });
        let subject = Self::subject(path);
        let events = self
            .service
            .watch(request)
            .await
            .map_err(|s| ApiError::from_status(&s, &subject))?
            .into_inner();
        let kind = path.kind;
        let render: watch::Render = if table::wanted(call.header("accept")) {
            Box::new(move |value| table::of_value(kind, value))
        } else {
            Box::new(|value| value)
        };
        let timeout = call
            .int("timeoutSeconds")?
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.unsigned_abs()));
        let body = watch::body(kind, Box::pin(events), render, timeout, subject);
        Ok(response(200, "application/json", body))
    }

    async fn create(&self, call: &Call, path: &ResourcePath, object: Object) -> Answer {
        let name = object.metadata().name.clone();
        let request = call.grpc(api::CreateRequest {
            object: Some(object.into()),
            dry_run: call.dry_run()?,
            field_manager: call.field_manager(),
        });
        let created = self
            .service
            .create(request)
            .await
            .map_err(|s| ApiError::from_status(&s, &subject(path.kind, Some(&name))))?
            .into_inner();
        object_response(201, created)
    }

    async fn update(&self, call: &Call, path: &ResourcePath, object: Object) -> Answer {
        let name = path.name.clone().unwrap_or_default();
        if object.metadata().name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object.metadata().name
            )));
        }
        let request = call.grpc(api::UpdateRequest {
            object: Some(object.into()),
            subresource: path.subresource.clone().unwrap_or_default(),
            dry_run: call.dry_run()?,
            field_manager: call.field_manager(),
        });
        let updated = answered(self.service.update(request).await, path)?;
        object_response(200, updated)
    }

    async fn patch(&self, call: &Call, path: &ResourcePath, bytes: &[u8]) -> Answer {
        let content_type = call.content_type().to_owned();
        let patch_type = match content_type.as_str() {
            "application/merge-patch+json" => api::PatchType::Merge,
            "application/strategic-merge-patch+json" => api::PatchType::Strategic,
            "application/json-patch+json" => return self.json_patch(call, path, bytes).await,
            "application/apply-patch+yaml" => return self.apply(call, path, bytes).await,
            other => return Err(ApiError::unsupported_media_type(other)),
        };
        let patch = std::str::from_utf8(bytes)
            .map_err(|_| ApiError::bad_request("the patch is not UTF-8 text"))?;
        let request = call.grpc(api::PatchRequest {
            key: Some(Self::key(path)),
            r#type: patch_type as i32,
            patch: patch.to_owned(),
            subresource: path.subresource.clone().unwrap_or_default(),
            dry_run: call.dry_run()?,
            field_manager: call.field_manager(),
        });
        let patched = answered(self.service.patch(request).await, path)?;
        object_response(200, patched)
    }

    /// Reads the object as the caller (a linearizable get).
    async fn read(&self, call: &Call, path: &ResourcePath) -> Result<TypedObject, tonic::Status> {
        let request = call.grpc(api::GetRequest {
            key: Some(Self::key(path)),
            consistency: api::Consistency::Linearizable as i32,
        });
        Ok(self.service.get(request).await?.into_inner())
    }

    /// Writes `value` (the whole object) over what was read, guarded by the read's
    /// resourceVersion unless `value` carries its own.
    async fn write_over(
        &self,
        call: &Call,
        path: &ResourcePath,
        value: Value,
    ) -> Result<TypedObject, tonic::Status> {
        let object = object_of(path.kind, value, path.namespace.as_deref())
            .map_err(|e| tonic::Status::invalid_argument(e.body["message"].to_string()))?;
        let dry_run = call
            .dry_run()
            .map_err(|e| tonic::Status::invalid_argument(e.body["message"].to_string()))?;
        let request = call.grpc(api::UpdateRequest {
            object: Some(object.into()),
            subresource: path.subresource.clone().unwrap_or_default(),
            dry_run,
            field_manager: call.field_manager(),
        });
        Ok(self.service.update(request).await?.into_inner())
    }

    async fn json_patch(&self, call: &Call, path: &ResourcePath, bytes: &[u8]) -> Answer {
        let patch: json_patch::Patch = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the JSON patch is not valid: {e}")))?;
        let subject = Self::subject(path);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self
                .read(call, path)
                .await
                .map_err(|s| ApiError::from_status(&s, &subject))?;
            let mut value = object_json(current)?;
            json_patch::patch(&mut value, &patch).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch does not apply: {e}"),
                )
            })?;
            match self.write_over(call, path, value).await {
                Ok(written) => return Ok(json_response(200, &object_json(written)?)),
                Err(s) if s.code() == tonic::Code::Aborted && attempt < PATCH_ATTEMPTS => continue,
                Err(s) => return Err(ApiError::from_status(&s, &subject)),
            }
        }
    }

    /// Server-side apply (`application/apply-patch+yaml`): the applied configuration is
    /// merged into the object (or creates it) with field ownership, as `managed_fields`
    /// works it out: a field another manager set differently is a 409 naming both unless
    /// `force=true`, and what this manager applied before and no longer applies goes. The
    /// write carries the read's resourceVersion, and is tried again when someone wrote in
    /// between.
    async fn apply(&self, call: &Call, path: &ResourcePath, bytes: &[u8]) -> Answer {
        let applied = body_value(bytes, "application/yaml")?;
        let namespace = path.namespace.as_deref();
        // The configuration must be an object of this URL's kind and name.
        let sent = object_of(path.kind, applied.clone(), namespace)?;
        let name = path.name.clone().unwrap_or_default();
        if !sent.metadata().name.is_empty() && sent.metadata().name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                sent.metadata().name
            )));
        }
        let manager = call.param("fieldManager").to_owned();
        if manager.is_empty() {
            return Err(ApiError::new(
                422,
                "Invalid",
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let force = call.flag("force");
        let subject = Self::subject(path);
        let api_version = path.kind.info().api_version();
        let refused = |e: ManagedFieldsError| match e {
            ManagedFieldsError::Conflicts(ref conflicts) => {
                ApiError::apply_conflicts(conflicts, e.to_string(), &subject)
            }
            other => ApiError::new(422, "Invalid", other.to_string()),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let time = now_rfc3339();
            let writer = Writer {
                manager: &manager,
                api_version: &api_version,
                time: &time,
            };
            let current = match self.read(call, path).await {
                Ok(current) => current,
                Err(s) if s.code() == tonic::Code::NotFound => {
                    let base = json!({"metadata": {"name": name}});
                    let done = managed_fields::apply(&base, &[], &applied, &writer, force)
                        .map_err(refused)?;
                    let mut object = object_of(path.kind, done.object, namespace)?;
                    object.metadata_mut().managed_fields = done.entries;
                    let request = call.grpc(api::CreateRequest {
                        object: Some(object.into()),
                        dry_run: call.dry_run()?,
                        field_manager: manager.clone(),
                    });
                    match self.service.create(request).await {
                        Ok(created) => {
                            return Ok(json_response(201, &object_json(created.into_inner())?))
                        }
                        Err(s)
                            if s.code() == tonic::Code::AlreadyExists
                                && attempt < PATCH_ATTEMPTS =>
                        {
                            continue
                        }
                        Err(s) => return Err(ApiError::from_status(&s, &subject)),
                    }
                }
                Err(s) => return Err(ApiError::from_status(&s, &subject)),
            };
            let current = Object::try_from(current)
                .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
            let entries = current.metadata().managed_fields.clone();
            let mut current_json = current.clone();
            current_json.set_type_meta();
            let current_json = current_json
                .to_json_value()
                .map_err(|e| ApiError::new(500, "InternalError", e.to_string()))?;
            let done = managed_fields::apply(&current_json, &entries, &applied, &writer, force)
                .map_err(refused)?;
            let mut object = object_of(path.kind, done.object, namespace)?;
            object.metadata_mut().managed_fields = done.entries;
            if managed_fields::same_but_times(&object, &current) {
                // Nothing changes but when the manager last applied: nothing is written.
                return Ok(json_response(200, &object_json(current.into())?));
            }
            object.metadata_mut().resource_version = current.metadata().resource_version.clone();
            let request = call.grpc(api::UpdateRequest {
                object: Some(object.into()),
                subresource: path.subresource.clone().unwrap_or_default(),
                dry_run: call.dry_run()?,
                field_manager: manager.clone(),
            });
            match self.service.update(request).await {
                Ok(written) => return Ok(json_response(200, &object_json(written.into_inner())?)),
                Err(s) if s.code() == tonic::Code::Aborted && attempt < PATCH_ATTEMPTS => continue,
                Err(s) => return Err(ApiError::from_status(&s, &subject)),
            }
        }
    }

    async fn delete(&self, call: &Call, path: &ResourcePath, bytes: &[u8]) -> Answer {
        let options = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            body_value(bytes, "application/json")?
        };
        let text = |field: &str| -> String {
            match options.get(field).and_then(Value::as_str) {
                Some(v) => v.to_owned(),
                None => call.param(field).to_owned(),
            }
        };
        let grace_period_seconds = match options.get("gracePeriodSeconds").and_then(Value::as_i64) {
            Some(g) => Some(g),
            None => call.int("gracePeriodSeconds")?,
        };
        let orphan = options.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            || call.flag("orphanDependents");
        let mut propagation = text("propagationPolicy");
        if propagation.is_empty() && orphan {
            propagation = "Orphan".to_owned();
        }
        let dry_run = call.dry_run()?
            || options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let preconditions = options.get("preconditions").map(|p| api::Preconditions {
            uid: p
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            resource_version: p
                .get("resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
        let request = call.grpc(api::DeleteRequest {
            key: Some(Self::key(path)),
            grace_period_seconds,
            propagation_policy: propagation,
            preconditions,
            dry_run,
        });
        let deleted = answered(self.service.delete(request).await, path)?;
        match deleted.object {
            Some(object) => Ok(json_response(200, &object_json(object)?)),
            None => Ok(json_response(200, &success(json!({"name": path.name})))),
        }
    }

    fn scale_json(path: &ResourcePath, scale: &api::Scale) -> Value {
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": path.name,
                "namespace": path.namespace,
                "resourceVersion": scale.resource_version,
            },
            "spec": {"replicas": scale.replicas},
            "status": {"replicas": scale.status_replicas, "selector": scale.selector},
        })
    }

    async fn get_scale(&self, call: &Call, path: &ResourcePath) -> Answer {
        let request = call.grpc(api::GetScaleRequest {
            key: Some(Self::key(path)),
        });
        let scale = answered(self.service.get_scale(request).await, path)?;
        Ok(json_response(200, &Self::scale_json(path, &scale)))
    }

    /// PUT or PATCH of a Scale: the replicas (and resourceVersion) it ends with.
    async fn update_scale(&self, call: &Call, path: &ResourcePath, bytes: &[u8]) -> Answer {
        let wanted = if call.method == http::Method::PUT {
            body_value(bytes, call.content_type())?
        } else {
            let get = call.grpc(api::GetScaleRequest {
                key: Some(Self::key(path)),
            });
            let scale = answered(self.service.get_scale(get).await, path)?;
            let mut current = Self::scale_json(path, &scale);
            let patch = body_value(bytes, "application/json")?;
            if call.content_type() == "application/json-patch+json" {
                let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|e| {
                    ApiError::bad_request(format!("the JSON patch is not valid: {e}"))
                })?;
                json_patch::patch(&mut current, &patch).map_err(|e| {
                    ApiError::new(
                        422,
                        "Invalid",
                        format!("the JSON patch does not apply: {e}"),
                    )
                })?;
            } else {
                // A Scale has no lists: merge and strategic merge patches agree.
                json_patch::merge(&mut current, &patch);
            }
            // The read guards nothing here: a patch applies to whatever is current.
            if let Some(meta) = current.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("resourceVersion");
            }
            current
        };
        let replicas = wanted
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .and_then(|r| i32::try_from(r).ok())
            .ok_or_else(|| {
                ApiError::new(
                    422,
                    "Invalid",
                    "Scale \"spec.replicas\" is invalid: spec.replicas: Required value",
                )
            })?;
        let resource_version = wanted
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let request = call.grpc(api::UpdateScaleRequest {
            key: Some(Self::key(path)),
            replicas,
            resource_version,
            field_manager: call.field_manager(),
        });
        let scale = answered(self.service.update_scale(request).await, path)?;
        Ok(json_response(200, &Self::scale_json(path, &scale)))
    }

    async fn logs(&self, call: &Call, path: &ResourcePath) -> Answer {
        let request = call.grpc(api::LogsRequest {
            namespace: path.namespace.clone().unwrap_or_default(),
            name: path.name.clone().unwrap_or_default(),
            container: call.param("container").to_owned(),
            follow: call.flag("follow"),
            previous: call.flag("previous"),
            tail_lines: call.int("tailLines")?,
        });
        let chunks = answered(self.service.logs(request).await, path)?;
        let stream = chunks.map(|chunk| match chunk {
            Ok(chunk) => Ok(Frame::data(Bytes::from(chunk.data))),
            Err(status) => Err(std::io::Error::other(status.message().to_owned())),
        });
        Ok(response(
            200,
            "text/plain",
            StreamBody::new(stream).boxed_unsync(),
        ))
    }

    async fn bind(&self, call: &Call, path: &ResourcePath, value: Value) -> Answer {
        let mut binding = match object_of(Kind::Binding, value, path.namespace.as_deref())? {
            Object::Binding(b) => b,
            _ => return Err(ApiError::bad_request("the body is not a Binding")),
        };
        if let Some(name) = &path.name {
            let meta = binding.metadata.get_or_insert_with(Default::default);
            if meta.name.is_empty() {
                meta.name = name.clone();
            } else if &meta.name != name {
                return Err(ApiError::bad_request(format!(
                    "the binding names pod {} but is posted to pod {name}",
                    meta.name
                )));
            }
        }
        let pod = binding.metadata.as_ref().map(|m| m.name.clone());
        let request = call.grpc(api::BindRequest {
            binding: Some(binding),
        });
        self.service
            .bind(request)
            .await
            .map_err(|s| ApiError::from_status(&s, &subject(Kind::Pod, pod.as_deref())))?;
        Ok(json_response(
            201,
            &success(json!({"name": pod, "kind": "pods"})),
        ))
    }

    async fn evict(&self, call: &Call, path: &ResourcePath, value: Value) -> Answer {
        let grace = value
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(Value::as_i64);
        let request = call.grpc(api::EvictRequest {
            namespace: path.namespace.clone().unwrap_or_default(),
            name: path.name.clone().unwrap_or_default(),
            grace_period_seconds: grace,
        });
        answered(self.service.evict(request).await, path)?;
        Ok(json_response(
            201,
            &success(json!({"name": path.name, "kind": "pods"})),
        ))
    }

    /// `approval`: the last Approved or Denied condition the caller's object carries.
    async fn approve(&self, call: &Call, path: &ResourcePath, value: Value) -> Answer {
        let conditions = value
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let decision = conditions.iter().rev().find(|c| {
            matches!(
                c.get("type").and_then(Value::as_str),
                Some("Approved" | "Denied")
            )
        });
        let Some(decision) = decision else {
            return Err(ApiError::new(
                422,
                "Invalid",
                "CertificateSigningRequest is invalid: status.conditions: Required value: an Approved or Denied condition",
            ));
        };
        let field = |name: &str| {
            decision
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let request = call.grpc(api::CertificateApprovalRequest {
            name: path.name.clone().unwrap_or_default(),
            approve: field("type") == "Approved",
            reason: field("reason"),
            message: field("message"),
        });
        let csr = answered(self.service.approve_certificate(request).await, path)?;
        Ok(json_response(200, &object_json(Object::from(csr).into())?))
    }

    /// `metrics.k8s.io`: the service's figures of every node (or the one named), in the
    /// shapes metrics-server answers with; a `labelSelector` on pods is matched against
    /// the pods the caller may list.
    async fn metrics(&self, call: &Call, path: &MetricsPath) -> Answer {
        let node = match path {
            MetricsPath::Nodes { name: Some(name) } => name.clone(),
            _ => String::new(),
        };
        let figures = self
            .service
            .metrics(call.grpc(api::MetricsRequest { node }))
            .await
            .map_err(|s| ApiError::from_status(&s, &Subject::default()))?
            .into_inner();
        let selector = call.param("labelSelector");
        let selected = match path {
            MetricsPath::Pods { namespace, .. } if !selector.is_empty() => {
                let request = call.grpc(api::ListRequest {
                    kind: Kind::Pod.name().to_owned(),
                    namespace: namespace.clone().unwrap_or_default(),
                    label_selector: selector.to_owned(),
                    ..Default::default()
                });
                let pods = self
                    .service
                    .list_page(request, ListItems::Decoded)
                    .await
                    .map_err(|s| ApiError::from_status(&s, &subject(Kind::Pod, None)))?
                    .into_inner();
                let mut set = std::collections::BTreeSet::new();
                for item in pods.items {
                    if let Ok(object) = Object::try_from(item) {
                        let meta = object.metadata();
                        set.insert((meta.namespace.clone(), meta.name.clone()));
                    }
                }
                Some(set)
            }
            _ => None,
        };
        Ok(json_response(
            200,
            &metrics::answer(path, &figures, selected.as_ref())?,
        ))
    }

    async fn review(&self, call: &Call, body: &Bytes, review: Review) -> Answer {
        if call.method != http::Method::POST {
            return Err(ApiError::method_not_allowed(call.method.as_str()));
        }
        let value = body_value(body, call.content_type())?;
        let spec = value.get("spec").cloned().unwrap_or(Value::Null);
        let text =
            |v: &Value, name: &str| v.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
        let (api_kind, status) = match review {
            Review::SelfRules => {
                let request = call.grpc(api::RulesReviewRequest {
                    namespace: text(&spec, "namespace"),
                });
                let rules = self
                    .service
                    .review_rules(request)
                    .await
                    .map_err(|s| ApiError::from_status(&s, &Subject::default()))?
                    .into_inner();
                let rules_json = |rules: &[rafter_proto::v1::PolicyRule]| -> Value {
                    Value::Array(
                        rules
                            .iter()
                            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
                            .collect(),
                    )
                };
                (
                    "SelfSubjectRulesReview",
                    json!({
                        "resourceRules": rules_json(&rules.resource_rules),
                        "nonResourceRules": rules_json(&rules.non_resource_rules),
                        "incomplete": rules.incomplete,
                        "evaluationError": rules.evaluation_error,
                    }),
                )
            }
            Review::SelfAccess | Review::Access => {
                let (user, groups) = if review == Review::Access {
                    let groups = spec
                        .get("groups")
                        .and_then(Value::as_array)
                        .map(|g| {
                            g.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .unwrap_or_default();
                    let user = text(&spec, "user");
                    if user.is_empty() {
                        return Err(ApiError::new(
                            422,
                            "Invalid",
                            "SubjectAccessReview is invalid: spec.user: Required value",
                        ));
                    }
                    (user, groups)
                } else {
                    (String::new(), Vec::new())
                };
                let mut request = api::AccessReviewRequest {
                    user,
                    groups,
                    ..Default::default()
                };
                if let Some(attributes) = spec.get("resourceAttributes") {
                    let group = text(attributes, "group");
                    let resource = text(attributes, "resource");
                    let Some(kind) = Kind::all()
                        .find(|k| k.info().plural == resource && k.info().group == group)
                    else {
                        let kind = if review == Review::Access {
                            "SubjectAccessReview"
                        } else {
                            "SelfSubjectAccessReview"
                        };
                        let status = json!({
                            "allowed": false,
                            "reason": format!("this server serves no resource {resource:?} in API group {group:?}"),
                        });
                        return Ok(review_answer(kind, value, status));
                    };
                    request.verb = text(attributes, "verb");
                    request.kind = kind.name().to_owned();
                    request.namespace = text(attributes, "namespace");
                    request.name = text(attributes, "name");
                    request.subresource = text(attributes, "subresource");
                } else if let Some(attributes) = spec.get("nonResourceAttributes") {
                    request.verb = text(attributes, "verb");
                    request.non_resource_path = text(attributes, "path");
                } else {
                    return Err(ApiError::new(
                        422,
                        "Invalid",
                        "SelfSubjectAccessReview is invalid: spec.resourceAttributes: Required value: resourceAttributes or nonResourceAttributes",
                    ));
                }
                let answer = self
                    .service
                    .review_access(call.grpc(request))
                    .await
                    .map_err(|s| ApiError::from_status(&s, &Subject::default()))?
                    .into_inner();
                let kind = if review == Review::Access {
                    "SubjectAccessReview"
                } else {
                    "SelfSubjectAccessReview"
                };
                (
                    kind,
                    json!({
                        "allowed": answer.allowed,
                        "denied": !answer.allowed,
                        "reason": answer.reason,
                    }),
                )
            }
        };
        Ok(review_answer(api_kind, value, status))
    }
}

/// The message of a service answer, or the error about `path` it failed with.
fn answered<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    path: &ResourcePath,
) -> Result<T, ApiError> {
    result
        .map(tonic::Response::into_inner)
        .map_err(|s| ApiError::from_status(&s, &subject(path.kind, path.name.as_deref())))
}

/// A review's answer: the request with its `status`.
fn review_answer(kind: &str, mut value: Value, status: Value) -> http::Response<Body> {
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".to_owned(), json!("authorization.k8s.io/v1"));
        map.insert("kind".to_owned(), json!(kind));
        map.insert("status".to_owned(), status);
    }
    json_response(201, &value)
}

/// The object a create or an update sends, as the resource at `path`.
fn sent_object(call: &Call, path: &ResourcePath, body: &[u8]) -> Result<Object, ApiError> {
    object_of_body(
        path.kind,
        body,
        call.content_type(),
        path.namespace.as_deref(),
    )
}
