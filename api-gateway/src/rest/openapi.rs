//! `/openapi/v2` and `/openapi/v3`: the served paths of every kind, their operations with
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter (kubectl's
//! `--validate=strict` then leaves validation to the server, which refuses unknown fields
//! by itself), and the schemas of the kinds (`schema`, from the proto definitions) that
//! `kubectl explain` walks.
//!
//! Owns the documents' shape; the schema of each message is `schema`'s.

use rafter_proto::Kind;
use serde_json::{json, Map, Value};

use super::convert::{full, json_response, response};
use super::Body;

mod schema;

/// The media type clients ask for the protobuf form of the v2 document with.
const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2";
/// The media type it is answered with (a valid MIME type: no `@`).
const V2_PROTOBUF_ANSWER: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The path of a group version in the v3 index (`api/v1`, `apis/apps/v1`).
fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The served group versions.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut seen = Vec::new();
    for kind in Kind::all() {
        let gv = (kind.info().group, kind.info().version);
        if !seen.contains(&gv) {
            seen.push(gv);
        }
    }
    seen
}

/// `/openapi/v3`: where each group version's document is.
pub(crate) fn v3_index() -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions() {
        let path = group_version_path(group, version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", schema::hash())}),
        );
    }
    json!({"paths": paths})
}

/// The operations of one path.
fn operations(kind: Kind, item: bool) -> Value {
    let info = kind.info();
    let gvk = json!({"group": info.group, "version": info.version, "kind": info.name});
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema::name_of(kind))});
    let body = json!({"content": {"application/json": {"schema": reference}}});
    let answer = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
    let writes = vec![
        query("dryRun"),
        query("fieldManager"),
        query("fieldValidation"),
    ];
    let operation = |action: &str, with_body: bool| {
        let mut op = json!({
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": answer,
        });
        if with_body {
            op["requestBody"] = body.clone();
            op["parameters"] = json!(writes);
        }
        op
    };
    if item {
        json!({
            "get": operation("get", false),
            "put": operation("put", true),
            "patch": operation("patch", true),
            "delete": operation("delete", false),
        })
    } else {
        json!({
            "get": operation("list", false),
            "post": operation("post", true),
        })
    }
}

/// The paths of `kind`: its collection and its items, in a namespace when namespaced.
fn paths_of(kind: Kind, paths: &mut Map<String, Value>) {
    let info = kind.info();
    let prefix = if info.group.is_empty() {
        format!("/api/{}", info.version)
    } else {
        format!("/apis/{}/{}", info.group, info.version)
    };
    let scope = if info.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{prefix}{scope}/{}", info.plural);
    paths.insert(format!("{collection}/{{name}}"), operations(kind, true));
    paths.insert(collection, operations(kind, false));
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`, `None` when not served.
pub(crate) fn v3(group: &str, version: &str) -> Option<Value> {
    let kinds: Vec<Kind> = Kind::all()
        .filter(|k| k.info().group == group && k.info().version == version)
        .collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for kind in &kinds {
        paths_of(*kind, &mut paths);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Rafter", "version": format!("v1.{}", super::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "components": {"schemas": schema::schemas(&kinds, "#/components/schemas/")},
    }))
}

/// `/openapi/v2`: JSON with every kind's paths and definitions; to a client that asks
/// for the protobuf form only (kubectl's client-side validation, which it skips when the
/// server validates fields), a document with no definitions.
pub(crate) fn v2(accept: &str) -> http::Response<Body> {
    let wants_json = accept.is_empty() || accept.contains("json") || accept.contains("*/*");
    if !wants_json && accept.contains(V2_PROTOBUF) {
        // openapi_v2.Document { swagger: "2.0" }: field 1, length-delimited.
        return response(200, V2_PROTOBUF_ANSWER, full(&b"\x0a\x032.0"[..]));
    }
    let kinds: Vec<Kind> = Kind::all().collect();
    let mut paths = Map::new();
    for kind in &kinds {
        paths_of(*kind, &mut paths);
    }
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "Rafter", "version": format!("v1.{}", super::discovery::KUBERNETES_MINOR)},
        "paths": paths,
        "definitions": schema::schemas(&kinds, "#/definitions/"),
    });
    json_response(200, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_version_is_indexed_and_its_patch_operations_take_field_validation() {
        let index = v3_index();
        assert!(index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/api/v1"));
        assert!(index["paths"]["apis/apps/v1"].is_object());
        let apps = v3("apps", "v1").unwrap();
        let patch =
            &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
        assert!(v3("gadgets.io", "v1").is_none());
    }
}
