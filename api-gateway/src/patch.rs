//! Patching stored objects: JSON merge patch (RFC 7386) and Kubernetes strategic merge
//! patch, both over `serde_json::Value` in the Kubernetes JSON shape (camelCase).
//!
//! Owns the patch semantics of the Patch call. It must not do I/O, decode typed objects,
//! check resourceVersions or validate the result: the gateway decodes the patched value
//! back into its kind and runs admission and validation on it like any update.
//!
//! ```text
//!   stored object --to_json_value--> Value --apply_patch(type, patch)--> Value --decode--> object
//! ```
//!
//! Strategic merge patch differs from a merge patch only for lists. A list whose path
//! ends with one of the suffixes in `LIST_RULES` is merged element by element, matching
//! elements by a merge key (containers by `name`, container ports by `containerPort` ...);
//! `metadata.finalizers` is merged as a set of strings; every other list is replaced.
//! Suffixes are matched on field names only, so `spec.containers` in a Pod and
//! `spec.template.spec.containers` in a Deployment both hit `containers`.
//!
//! Directives understood in a strategic merge patch:
//!
//! | directive | where | effect |
//! |---|---|---|
//! | `"$patch": "delete"` | map, or element of a keyed list | removes the map / the element with that key |
//! | `"$patch": "replace"` | map | the map becomes the patch (minus directives) |
//! | `{"$patch": "replace"}` | element of a list | the list becomes the other patch elements |
//! | `"$patch": "merge"` | map | the default, accepted for completeness |
//! | `"$retainKeys": [..]` | map | keys of the stored map not listed are cleared |
//! | `"$deleteFromPrimitiveList/<f>": [..]` | map | removes these values from the string list `<f>` |
//! | `"$setElementOrder/<f>": [..]` | map | accepted and ignored: merged lists keep stored order, new elements last |
//!
//! `tolerations` are replaced as a whole, as Kubernetes does: tolerations have no field that
//! identifies one (two may share a `key` with different effects), so merging them by key
//! would silently drop one.

use rafter_proto::PatchType;
use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The stored document or the patch is not a JSON object where one is required.
    #[error("{what} must be a JSON object, found {found}")]
    NotAnObject {
        /// `the patch` or `the object`.
        what: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A `$`-directive is unknown, has a value of the wrong type, or cannot apply here.
    #[error("bad directive {directive:?} at {path}: {reason}")]
    BadDirective {
        /// Where in the patch the directive is (`spec.template`).
        path: String,
        /// The directive (`$patch`, `$retainKeys` ...).
        directive: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// An element of a list merged by key does not carry the key.
    #[error("element {path} of a list merged by {key:?} has no {key:?} field")]
    MergeKeyMissing {
        /// The element's path (`spec.containers[1]`).
        path: String,
        /// The merge key (`name`).
        key: &'static str,
    },
    /// An element of a list merged by key is not an object.
    #[error("element {path} of a list merged by {key:?} must be an object, found {found}")]
    ElementNotAnObject {
        /// The element's path (`spec.containers[1]`).
        path: String,
        /// The merge key (`name`).
        key: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
}

/// Applies a patch to a stored object; both must be JSON objects.
pub fn apply_patch(
    patch_type: PatchType,
    original: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    require_object("the object", original)?;
    require_object("the patch", patch)?;
    match patch_type {
        PatchType::Merge => {
            let mut result = original.clone();
            merge_patch(&mut result, patch);
            Ok(result)
        }
        PatchType::StrategicMerge => strategic_merge_patch(original, patch),
    }
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes a key, anything
/// else (lists included) replaces. A patch that is not an object replaces the target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Kubernetes strategic merge patch of an object in the Kubernetes JSON shape (see the
/// module doc for the lists merged by key and the directives).
pub fn strategic_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let original = require_object("the object", original)?;
    let patch = require_object("the patch", patch)?;
    let mut path = Path::default();
    match merge_map(Some(original), patch, &mut path)? {
        Some(merged) => Ok(Value::Object(merged)),
        None => Err(PatchError::BadDirective {
            path: path.to_string(),
            directive: "$patch".to_owned(),
            reason: "cannot delete the whole object with a patch; use Delete".to_owned(),
        }),
    }
}

fn require_object<'a>(
    what: &'static str,
    value: &'a Value,
) -> Result<&'a Map<String, Value>, PatchError> {
    value.as_object().ok_or(PatchError::NotAnObject {
        what,
        found: type_name(value),
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// How a list is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// Elements are objects matched by this field.
    Key(&'static str),
    /// Elements are strings kept as a set: the patch adds the missing ones.
    Set,
}

/// Lists merged instead of replaced, by the field names their path ends with. The longest
/// matching suffix wins.
const LIST_RULES: &[(&[&str], ListStrategy)] = &[
    (&["containers"], ListStrategy::Key("name")),
    (&["initContainers"], ListStrategy::Key("name")),
    (&["containers", "env"], ListStrategy::Key("name")),
    (&["initContainers", "env"], ListStrategy::Key("name")),
    (&["containers", "ports"], ListStrategy::Key("containerPort")),
    (
        &["initContainers", "ports"],
        ListStrategy::Key("containerPort"),
    ),
    (&["volumeMounts"], ListStrategy::Key("mountPath")),
    (&["volumeDevices"], ListStrategy::Key("devicePath")),
    (&["spec", "volumes"], ListStrategy::Key("name")),
    (&["imagePullSecrets"], ListStrategy::Key("name")),
    (&["spec", "ports"], ListStrategy::Key("port")),
    (&["conditions"], ListStrategy::Key("type")),
    (&["status", "addresses"], ListStrategy::Key("type")),
    (&["status", "podIPs"], ListStrategy::Key("ip")),
    (&["metadata", "ownerReferences"], ListStrategy::Key("uid")),
    (&["metadata", "finalizers"], ListStrategy::Set),
];

fn list_strategy(path: &Path) -> Option<ListStrategy> {
    let fields: Vec<&str> = path
        .segments
        .iter()
        .filter_map(|segment| match segment {
            Segment::Field(name) => Some(name.as_str()),
            Segment::Index(_) => None,
        })
        .collect();
    list_strategy_of(&fields)
}

/// How the list at the field names `fields` (list indexes left out) is merged; `None`:
/// it is replaced whole. Server-side apply keys its list elements by the same rules.
pub(crate) fn list_strategy_of(fields: &[&str]) -> Option<ListStrategy> {
    LIST_RULES
        .iter()
        .filter(|(suffix, _)| fields.ends_with(suffix))
        .max_by_key(|(suffix, _)| suffix.len())
        .map(|(_, strategy)| *strategy)
}

#[derive(Debug, Clone)]
enum Segment {
    Field(String),
    Index(usize),
}

/// Where in the object the merge is, for list rules and error messages.
#[derive(Debug, Clone, Default)]
struct Path {
    segments: Vec<Segment>,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.segments.is_empty() {
            return f.write_str("the top level");
        }
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// The `$patch` directive of a map, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapDirective {
    Merge,
    Replace,
    Delete,
}

fn map_directive(patch: &Map<String, Value>, path: &Path) -> Result<MapDirective, PatchError> {
    match patch.get(PATCH) {
        None => Ok(MapDirective::Merge),
        Some(Value::String(s)) if s == "merge" => Ok(MapDirective::Merge),
        Some(Value::String(s)) if s == "replace" => Ok(MapDirective::Replace),
        Some(Value::String(s)) if s == "delete" => Ok(MapDirective::Delete),
        Some(other) => Err(bad_directive(
            path,
            PATCH,
            format!("unknown value {other}; use \"merge\", \"replace\" or \"delete\""),
        )),
    }
}

fn bad_directive(path: &Path, directive: &str, reason: String) -> PatchError {
    PatchError::BadDirective {
        path: path.to_string(),
        directive: directive.to_owned(),
        reason,
    }
}

fn string_list<'a>(
    value: &'a Value,
    path: &Path,
    directive: &str,
) -> Result<Vec<&'a Value>, PatchError> {
    match value {
        Value::Array(items) => Ok(items.iter().collect()),
        other => Err(bad_directive(
            path,
            directive,
            format!("must be a list, found {}", type_name(other)),
        )),
    }
}

/// Merges a patch map into an original map (absent: an empty one). `None` means the
/// patch deletes the map.
fn merge_map(
    original: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
    path: &mut Path,
) -> Result<Option<Map<String, Value>>, PatchError> {
    let mut result = match map_directive(patch, path)? {
        MapDirective::Delete => return Ok(None),
        MapDirective::Replace => Map::new(),
        MapDirective::Merge => original.cloned().unwrap_or_default(),
    };

    for (key, value) in patch.iter().filter(|(key, _)| key.starts_with('$')) {
        if key == PATCH {
            continue;
        } else if key == RETAIN_KEYS {
            let keep = string_list(value, path, RETAIN_KEYS)?;
            let listed = |k: &str| keep.iter().any(|v| v.as_str() == Some(k));
            if let Some((unlisted, _)) = patch
                .iter()
                .find(|(k, v)| !k.starts_with('$') && !v.is_null() && !listed(k))
            {
                return Err(bad_directive(
                    path,
                    RETAIN_KEYS,
                    format!("the patch sets {unlisted:?}, which the list does not retain"),
                ));
            }
            result.retain(|k, _| listed(k));
        } else if let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            let remove = string_list(value, path, key)?;
            if let Some(Value::Array(items)) = result.get_mut(field) {
                items.retain(|item| !remove.contains(&item));
            }
        } else if key.starts_with(SET_ELEMENT_ORDER) {
            string_list(value, path, key)?;
        } else {
            return Err(bad_directive(
                path,
                key,
                format!(
                    "unknown directive; use {PATCH}, {RETAIN_KEYS}, {DELETE_FROM_PRIMITIVE_LIST}<field> or {SET_ELEMENT_ORDER}<field>"
                ),
            ));
        }
    }

    for (key, value) in patch.iter().filter(|(key, _)| !key.starts_with('$')) {
        path.segments.push(Segment::Field(key.clone()));
        match value {
            Value::Null => {
                result.remove(key);
            }
            Value::Object(patch_map) => {
                let original = result.get(key).and_then(Value::as_object);
                match merge_map(original, patch_map, path)? {
                    Some(merged) => {
                        result.insert(key.clone(), Value::Object(merged));
                    }
                    None => {
                        result.remove(key);
                    }
                }
            }
            Value::Array(items) => {
                let merged = merge_list(result.get(key), items, path)?;
                result.insert(key.clone(), merged);
            }
            scalar => {
                result.insert(key.clone(), scalar.clone());
            }
        }
        path.segments.pop();
    }
    Ok(Some(result))
}

/// `{"$patch": "replace"}` as a list element: replace the list with the other elements.
fn is_list_replace(element: &Value) -> bool {
    element
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.get(PATCH).and_then(Value::as_str) == Some("replace"))
}

fn merge_list(
    original: Option<&Value>,
    patch: &[Value],
    path: &mut Path,
) -> Result<Value, PatchError> {
    let replace = patch.iter().any(is_list_replace);
    let original: &[Value] = match original {
        Some(Value::Array(items)) if !replace => items,
        _ => &[],
    };
    let strategy = list_strategy(path);
    let mut result: Vec<Value> = match strategy {
        Some(_) => original.to_vec(),
        None => Vec::new(),
    };
    for (index, element) in patch.iter().enumerate() {
        if is_list_replace(element) {
            continue;
        }
        path.segments.push(Segment::Index(index));
        match strategy {
            Some(ListStrategy::Key(key)) => merge_keyed_element(&mut result, element, key, path)?,
            Some(ListStrategy::Set) => {
                if !result.contains(element) {
                    result.push(element.clone());
                }
            }
            // A replaced list: objects still go through `merge_map` so directives are
            // applied rather than stored.
            None => match element {
                Value::Object(map) => {
                    if let Some(cleaned) = merge_map(None, map, path)? {
                        result.push(Value::Object(cleaned));
                    }
                }
                other => result.push(other.clone()),
            },
        }
        path.segments.pop();
    }
    Ok(Value::Array(result))
}

fn merge_keyed_element(
    result: &mut Vec<Value>,
    element: &Value,
    key: &'static str,
    path: &mut Path,
) -> Result<(), PatchError> {
    let Value::Object(patch_map) = element else {
        return Err(PatchError::ElementNotAnObject {
            path: path.to_string(),
            key,
            found: type_name(element),
        });
    };
    let Some(wanted) = patch_map.get(key) else {
        return Err(PatchError::MergeKeyMissing {
            path: path.to_string(),
            key,
        });
    };
    let same_key = |item: &Value| item.get(key) == Some(wanted);
    if map_directive(patch_map, path)? == MapDirective::Delete {
        result.retain(|item| !same_key(item));
        return Ok(());
    }
    match result.iter().position(same_key) {
        Some(at) => match merge_map(result[at].as_object(), patch_map, path)? {
            Some(merged) => result[at] = Value::Object(merged),
            None => {
                result.remove(at);
            }
        },
        None => {
            if let Some(merged) = merge_map(None, patch_map, path)? {
                result.push(Value::Object(merged));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "patch_test.rs"]
mod tests;
