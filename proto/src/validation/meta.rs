//! `metadata` of every kind, label maps, label selectors and whether a selector matches a
//! pod template's labels.
//!
//! Owns the checks every object shares (name, namespace, labels, annotations, owner
//! references, finalizers). It must not check anything under `spec`; the kind modules call
//! [`labels`], [`label_selector`] and [`selector_matches_template`] for their own fields.

use super::{name_format, names, Errors, Path};
use crate::v1::{LabelSelector, ObjectMeta};
use crate::Object;

/// The most bytes all annotations of one object may take (keys and values).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

const SELECTOR_OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

/// Checks `metadata`: name (or generateName), namespace and scope, labels, annotations.
pub(super) fn object_meta(object: &Object, errs: &mut Errors) {
    let kind = object.kind();
    let meta = object.metadata();
    let path = Path::root("metadata");
    let format = name_format(kind);
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            errs.required(&path.child("name"), "name or generateName is required");
        } else {
            // The server appends a random suffix, so only the prefix, less a trailing '-',
            // has to be a valid start of a name.
            let prefix = meta
                .generate_name
                .strip_suffix('-')
                .unwrap_or(&meta.generate_name);
            for msg in format(prefix) {
                errs.invalid(&path.child("generateName"), &meta.generate_name, msg);
            }
        }
    } else {
        errs.format(&path.child("name"), &meta.name, format);
    }
    let namespaced = kind.info().namespaced;
    if !meta.namespace.is_empty() {
        if namespaced {
            errs.format(
                &path.child("namespace"),
                &meta.namespace,
                names::dns1123_label,
            );
        } else {
            errs.forbidden(&path.child("namespace"), "not allowed on this type");
        }
    }
    labels(&meta.labels, &path.child("labels"), errs);
    annotations(meta, &path.child("annotations"), errs);
    for (i, owner) in meta.owner_references.iter().enumerate() {
        let owner_path = path.child("ownerReferences").index(i);
        errs.non_empty(&owner_path.child("apiVersion"), &owner.api_version);
        errs.non_empty(&owner_path.child("kind"), &owner.kind);
        errs.non_empty(&owner_path.child("name"), &owner.name);
        errs.non_empty(&owner_path.child("uid"), &owner.uid);
    }
    for (i, finalizer) in meta.finalizers.iter().enumerate() {
        errs.format(
            &path.child("finalizers").index(i),
            finalizer,
            names::qualified_name,
        );
    }
}

/// Checks a label map: keys are qualified names, values label values.
pub(crate) fn labels(labels: &crate::StringMap, path: &Path, errs: &mut Errors) {
    for (key, value) in labels {
        errs.format(path, key, names::qualified_name);
        errs.format(&path.key(key), value, names::label_value);
    }
}

fn annotations(meta: &ObjectMeta, path: &Path, errs: &mut Errors) {
    let mut total = 0;
    for (key, value) in &meta.annotations {
        for msg in names::qualified_name(&key.to_ascii_lowercase()) {
            errs.invalid(path, key, msg);
        }
        total += key.len() + value.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT);
    }
}

/// Checks a label selector's keys, values and operators.
pub(crate) fn label_selector(selector: &LabelSelector, path: &Path, errs: &mut Errors) {
    labels(&selector.match_labels, &path.child("matchLabels"), errs);
    for (i, req) in selector.match_expressions.iter().enumerate() {
        let req_path = path.child("matchExpressions").index(i);
        errs.name(&req_path.child("key"), &req.key, names::qualified_name);
        let values_path = req_path.child("values");
        match req.operator.as_str() {
            "In" | "NotIn" if req.values.is_empty() => {
                errs.required(
                    &values_path,
                    "must be specified when `operator` is 'In' or 'NotIn'",
                );
            }
            "Exists" | "DoesNotExist" if !req.values.is_empty() => {
                errs.forbidden(
                    &values_path,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                );
            }
            op => errs.enum_value(&req_path.child("operator"), op, SELECTOR_OPERATORS),
        }
        for (j, value) in req.values.iter().enumerate() {
            errs.format(&values_path.index(j), value, names::label_value);
        }
    }
}

/// True when an empty selector (nothing to match on) is given.
pub(crate) fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.is_empty() && selector.match_expressions.is_empty()
}

/// Whether the labels satisfy the selector (an empty selector matches everything).
pub(crate) fn selector_matches(selector: &LabelSelector, labels: &crate::StringMap) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_match = selector.match_expressions.iter().all(|req| {
        let value = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| req.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

/// For workloads: the selector is required, not empty, valid, and matches the template's
/// labels. `spec` is the path of the workload's spec.
pub(crate) fn selector_matches_template(
    selector: Option<&LabelSelector>,
    template_meta: Option<&ObjectMeta>,
    spec: &Path,
    kind_name: &str,
    errs: &mut Errors,
) {
    let selector_path = spec.child("selector");
    let Some(selector) = selector else {
        errs.required(&selector_path, "");
        return;
    };
    if selector_is_empty(selector) {
        errs.invalid(
            &selector_path,
            "",
            format!("empty selector is invalid for {kind_name}"),
        );
        return;
    }
    label_selector(selector, &selector_path, errs);
    let empty = crate::StringMap::new();
    let template_labels = template_meta.map_or(&empty, |m| &m.labels);
    if !selector_matches(selector, template_labels) {
        errs.invalid(
            &spec.child("template").child("metadata").child("labels"),
            render_labels(template_labels),
            "`selector` does not match template `labels`",
        );
    }
}

/// Labels as `kubectl` shows them: `app=web,tier=front`.
pub(crate) fn render_labels(labels: &crate::StringMap) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
