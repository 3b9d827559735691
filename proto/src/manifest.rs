//! Manifests: YAML or JSON text in the Kubernetes shape (`apiVersion`, `kind`,
//! `metadata`, `spec`), one or many documents separated by `---`, into typed [`Object`]s
//! and back.
//!
//! Owns splitting a text into documents, finding each document's kind and checking its
//! `apiVersion`, and reporting where a document went wrong (source, document index, field
//! path). It neither defaults nor validates the objects (see `defaults` and `validation`)
//! and reads no files: callers hand it the text and a name for it.
//!
//! ```text
//!  text ──split on ---──► document ──YAML──► value ──apiVersion/kind──► Kind
//!                                              └──────typed serde (path-tracked)──► Object
//! ```

use std::fmt;

use serde::Deserialize;

use crate::{Kind, Object};

/// Where in a manifest something went wrong, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The name of the text: a file path, or `-` for standard input.
    pub source_name: String,
    /// The document's index within the text, from 0.
    pub document: usize,
    /// The field path (`spec.containers[0].args[0]`), when the error is about a field.
    pub field: Option<String>,
    /// What is wrong, with what to do where that is known.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source_name, self.document)?;
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One parsed document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The document's index within its text, from 0.
    pub index: usize,
    /// The typed object.
    pub object: Object,
}

/// The largest manifest text accepted, so a runaway input fails fast and clearly.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

/// Parses every document of `text`. Empty documents are skipped; each other document gives
/// an object or an error, so one bad document does not hide the others. A `kind: List`
/// document gives one result per item.
pub fn parse_manifests(text: &str, source_name: &str) -> Vec<Result<Document, ManifestError>> {
    let error = |document: usize, field: Option<String>, message: String| ManifestError {
        source_name: source_name.to_owned(),
        document,
        field,
        message,
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return vec![Err(error(
            0,
            None,
            format!(
                "the text is {} bytes; manifests are limited to {MAX_MANIFEST_BYTES} bytes",
                text.len()
            ),
        ))];
    }
    let mut results = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(value) => value,
            Err(e) => {
                // A syntax error ends the stream: nothing after it can be trusted.
                results.push(Err(error(index, None, yaml_message(&e))));
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        match value_to_objects(value) {
            Ok(objects) => results.extend(
                objects
                    .into_iter()
                    .map(|object| Ok(Document { index, object })),
            ),
            Err((field, message)) => results.push(Err(error(index, field, message))),
        }
    }
    results
}

/// Parses one document that must hold exactly one object (a JSON or YAML body).
pub fn parse_object(text: &str, source_name: &str) -> Result<Object, ManifestError> {
    let mut results = parse_manifests(text, source_name);
    match results.len() {
        1 => results.remove(0).map(|d| d.object),
        n => Err(ManifestError {
            source_name: source_name.to_owned(),
            document: 0,
            field: None,
            message: format!("expected exactly one object, found {n}"),
        }),
    }
}

type FieldMessage = (Option<String>, String);

fn value_to_objects(value: serde_yaml::Value) -> Result<Vec<Object>, FieldMessage> {
    let serde_yaml::Value::Mapping(map) = &value else {
        return Err((
            None,
            "a manifest must be a mapping with apiVersion, kind and metadata".to_owned(),
        ));
    };
    let text_field = |name: &str| -> Result<String, FieldMessage> {
        match map.get(name) {
            None | Some(serde_yaml::Value::Null) => {
                Err((Some(name.to_owned()), "Required value".to_owned()))
            }
            Some(serde_yaml::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err((
                Some(name.to_owned()),
                "must be a non-empty string".to_owned(),
            )),
        }
    };
    let api_version = text_field("apiVersion")?;
    let kind_name = text_field("kind")?;
    if kind_name == "List" {
        let items = match map.get("items") {
            Some(serde_yaml::Value::Sequence(items)) => items.clone(),
            None | Some(serde_yaml::Value::Null) => Vec::new(),
            Some(_) => {
                return Err((
                    Some("items".to_owned()),
                    "must be a list of objects".to_owned(),
                ))
            }
        };
        let mut objects = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let mut inner = value_to_objects(item).map_err(|(field, message)| {
                let path = match field {
                    Some(f) => format!("items[{i}].{f}"),
                    None => format!("items[{i}]"),
                };
                (Some(path), message)
            })?;
            objects.append(&mut inner);
        }
        return Ok(objects);
    }
    let kind = Kind::from_name(&kind_name).map_err(|e| (Some("kind".to_owned()), e.to_string()))?;
    kind.check_api_version(&api_version)
        .map_err(|e| (Some("apiVersion".to_owned()), e.to_string()))?;
    let object = Object::deserialize_kind(kind, value).map_err(|e| {
        let path = e.path().to_string();
        (Some(path), field_message(e.inner()))
    })?;
    Ok(vec![object])
}

fn field_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    // serde's "invalid type: integer `10`, expected a string" gets the fix spelled out.
    if text.starts_with("invalid type: integer") && text.ends_with("expected a string")
        || text.starts_with("invalid type: boolean") && text.ends_with("expected a string")
    {
        format!("{text}; quote the value to make it a string")
    } else if text.starts_with("unknown field") {
        format!("{text}; check the spelling and the indentation")
    } else {
        text
    }
}

fn yaml_message(e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    if text.contains("found character that cannot start any token") {
        format!("{text} (tabs cannot indent YAML; use spaces)")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_parses_each_object() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers: [{name: c, image: busybox}]\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n";
        let docs: Vec<_> = parse_manifests(text, "t.yaml")
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].object.kind(), Kind::Pod);
        assert_eq!(docs[1].object.kind(), Kind::Deployment);
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].object.metadata().name, "d");
    }

    #[test]
    fn json_parses_like_yaml() {
        let text =
            r#"{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1","labels":{"name":"x"}}}"#;
        let obj = parse_object(text, "n.json").unwrap();
        assert_eq!(obj.kind(), Kind::Node);
        assert_eq!(obj.metadata().labels["name"], "x");
    }

    #[test]
    fn a_misplaced_field_is_named_with_its_path() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    volumes: []\n";
        let err = parse_object(text, "p.yaml").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.containers[0].volumes"));
        assert!(err.message.contains("unknown field `volumes`"), "{err}");
        assert!(
            err.to_string()
                .starts_with("p.yaml: document 0: spec.containers[0].volumes: "),
            "{err}"
        );
    }

    #[test]
    fn numbers_where_strings_belong_say_to_quote_them() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    args:\n    - 10\n";
        let err = parse_object(text, "p.yaml").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.containers[0].args[0]"));
        assert!(err.message.contains("quote"), "{err}");
    }

    #[test]
    fn quantities_may_be_numbers_and_int_or_string_both() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: i\n    resources:\n      requests: {cpu: 1, memory: 1Gi}\n    livenessProbe:\n      httpGet: {port: http}\n    readinessProbe:\n      tcpSocket: {port: 8080}\n";
        let Object::Pod(pod) = parse_object(text, "p.yaml").unwrap() else {
            panic!("not a pod")
        };
        let c = &pod.spec.unwrap().containers[0];
        assert_eq!(c.resources.as_ref().unwrap().requests["cpu"], "1");
        let live = c
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(live.port, Some(crate::IntOrString::String("http".into())));
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .tcp_socket
            .as_ref()
            .unwrap();
        assert_eq!(ready.port, Some(crate::IntOrString::Int(8080)));
    }

    #[test]
    fn missing_kind_and_unknown_kind_are_clear_errors() {
        let err = parse_object("apiVersion: v1\nmetadata: {name: a}\n", "x").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("kind"));
        let err = parse_object("apiVersion: v1\nkind: Gadget\n", "x").unwrap_err();
        assert!(err.message.contains("unknown kind \"Gadget\""), "{err}");
        let err = parse_object("- 1\n- 2\n", "x").unwrap_err();
        assert!(err.message.contains("mapping"), "{err}");
    }

    #[test]
    fn tabs_in_indentation_are_explained() {
        let err = parse_object(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n",
            "x",
        )
        .unwrap_err();
        assert!(err.message.contains("tabs"), "{err}");
    }

    #[test]
    fn a_list_gives_its_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n";
        assert_eq!(parse_manifests(text, "l").len(), 2);
        let bad = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {nam: a}}\n";
        let err = parse_object(bad, "l").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("items[0].metadata.nam"));
    }

    #[test]
    fn serialising_leaves_out_defaults_and_parses_back_equal() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n  strategy:\n    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}\n";
        let obj = parse_object(text, "d").unwrap();
        let yaml = obj.to_yaml().unwrap();
        assert!(
            yaml.contains("replicas: 0"),
            "explicit zero replicas must survive: {yaml}"
        );
        assert!(!yaml.contains("paused"), "defaults are left out: {yaml}");
        assert_eq!(parse_object(&yaml, "again").unwrap(), obj);
    }
}
