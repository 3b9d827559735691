//! Field ownership (`metadata.managedFields`): which field manager set which fields, as
//! server-side apply needs it to merge an applied configuration, to remove what a manager
//! stopped applying, and to refuse an apply that would change another manager's field.
//!
//! ```text
//!   apply(current, applied, manager, force)
//!     applied's fields ∩ another manager's fields, with a different value → conflicts
//!     (refused unless force; with force the other manager loses those fields)
//!     current ⊕ applied (strategic merge)  −  fields the manager applied last time and
//!     no longer applies, unless someone else owns them   →  the new object
//!   track_update(old, new, manager): the fields that changed become the manager's
//!     (operation Update) and leave every other manager
//! ```
//!
//! Field sets are paths in the Kubernetes JSON shape. Lists that strategic merge patch
//! merges by key (containers by `name`, ports by `containerPort` ...; see `patch`) are
//! owned element by element (`k:{"name":"app"}`), string sets such as finalizers value by
//! value (`v:"x"`), every other list as a whole. `status` and the server-set metadata are
//! never owned. Owns the sets and their FieldsV1 encoding; it does no I/O and decides
//! nothing about who may write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rafter_proto::v1::ManagedFieldsEntry;
use serde_json::{Map, Value};

use crate::patch::{self, ListStrategy, PatchError};

/// Top-level fields no manager owns.
const UNOWNED_TOP: &[&str] = &["apiVersion", "kind", "status"];
/// Metadata fields the server sets, which no manager owns.
const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The operation of an entry written by server-side apply.
pub(crate) const APPLY: &str = "Apply";
/// The operation of an entry written by any other write.
pub(crate) const UPDATE: &str = "Update";

/// Why field ownership could not be worked out or an apply was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ManagedFieldsError {
    /// The apply would change fields other managers own.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
    /// A stored or sent `managedFields` entry is not in the FieldsV1 shape.
    #[error("metadata.managedFields[{index}].fieldsV1: {reason}")]
    BadFields {
        /// Which entry.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The applied configuration does not merge into the object.
    #[error("{0}")]
    Merge(#[from] PatchError),
}

/// One field an apply would take from another manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The manager that owns the field now.
    pub(crate) manager: String,
    /// The API version it wrote the field with.
    pub(crate) api_version: String,
    /// The field, as Kubernetes prints it (`.spec.replicas`).
    pub(crate) field: String,
}

impl Conflict {
    /// The cause's message, as Kubernetes words it.
    pub(crate) fn message(&self) -> String {
        format!(
            "conflict with {:?} using {}",
            self.manager, self.api_version
        )
    }
}

fn conflict_message(conflicts: &[Conflict]) -> String {
    let mut text = format!(
        "Apply failed with {} conflict{}:",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" }
    );
    if let [only] = conflicts {
        let _ = write!(text, " {}: {}", only.message(), only.field);
        return text;
    }
    let mut by_manager: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for conflict in conflicts {
        by_manager
            .entry(conflict.message())
            .or_default()
            .push(&conflict.field);
    }
    for (manager, fields) in by_manager {
        let _ = write!(text, " {}:", manager.replacen("conflict", "conflicts", 1));
        for field in fields {
            let _ = write!(text, "\n- {field}");
        }
    }
    text
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// A field of a map.
    Field(String),
    /// The element of a keyed list whose key fields are this JSON object (compact text).
    Key(String),
    /// The element of a string set equal to this JSON value (compact text).
    Value(String),
}

type FieldPath = Vec<Step>;

/// A set of fields of one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet(BTreeSet<FieldPath>);

impl FieldSet {
    /// Every field `object` sets, but the unowned ones.
    pub(crate) fn of(object: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Value::Object(map) = object else {
            return set;
        };
        for (name, value) in map {
            if UNOWNED_TOP.contains(&name.as_str()) {
                continue;
            }
            if name == "metadata" {
                if let Value::Object(meta) = value {
                    for (field, value) in meta {
                        if UNOWNED_METADATA.contains(&field.as_str()) {
                            continue;
                        }
                        let path = vec![Step::Field(name.clone()), Step::Field(field.clone())];
                        walk(value, path, &mut vec![name, field], &mut set.0);
                    }
                }
                continue;
            }
            walk(
                value,
                vec![Step::Field(name.clone())],
                &mut vec![name],
                &mut set.0,
            );
        }
        set
    }

    /// Whether the set has no fields.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set in the FieldsV1 shape: `{"f:spec": {"f:replicas": {}}}`, with `".": {}` on
    /// an owned element that also has owned fields.
    pub(crate) fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            owned: bool,
            children: BTreeMap<String, Node>,
        }
        fn render(node: &Node) -> Value {
            let mut map = Map::new();
            if node.owned && !node.children.is_empty() {
                map.insert(".".to_owned(), Value::Object(Map::new()));
            }
            for (name, child) in &node.children {
                map.insert(name.clone(), render(child));
            }
            Value::Object(map)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let mut node = &mut root;
            for step in path {
                node = node.children.entry(step_text(step)).or_default();
            }
            node.owned = true;
        }
        render(&root)
    }

    /// Reads a FieldsV1 value (what `to_fields_v1` writes, or another server's).
    fn from_fields_v1(value: &Value) -> Result<FieldSet, String> {
        fn read(
            value: &Value,
            path: &mut FieldPath,
            out: &mut BTreeSet<FieldPath>,
        ) -> Result<(), String> {
            let Value::Object(map) = value else {
                return Err(format!("{} is not an object", path_text(path)));
            };
            if map.is_empty() && !path.is_empty() {
                out.insert(path.clone());
            }
            for (name, child) in map {
                if name == "." {
                    out.insert(path.clone());
                    continue;
                }
                let step = parse_step(name)?;
                path.push(step);
                read(child, path, out)?;
                path.pop();
            }
            Ok(())
        }
        let mut set = BTreeSet::new();
        read(value, &mut Vec::new(), &mut set)?;
        Ok(FieldSet(set))
    }

    fn contains(&self, path: &FieldPath) -> bool {
        self.0.contains(path)
    }

    /// Whether the set holds `path` or a field under it.
    fn holds_under(&self, path: &FieldPath) -> bool {
        self.0
            .range(path.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(path))
    }
}

fn step_text(step: &Step) -> String {
    match step {
        Step::Field(name) => format!("f:{name}"),
        Step::Key(key) => format!("k:{key}"),
        Step::Value(value) => format!("v:{value}"),
    }
}

fn parse_step(text: &str) -> Result<Step, String> {
    let compact = |json: &str| {
        serde_json::from_str::<Value>(json)
            .map(|v| v.to_string())
            .map_err(|e| format!("{text:?} does not hold JSON: {e}"))
    };
    match text.split_once(':') {
        Some(("f", name)) => Ok(Step::Field(name.to_owned())),
        Some(("k", key)) => Ok(Step::Key(compact(key)?)),
        Some(("v", value)) => Ok(Step::Value(compact(value)?)),
        _ => Err(format!(
            "{text:?} is not a field (f:), a key (k:) or a value (v:)"
        )),
    }
}

/// A path as Kubernetes prints it in a conflict: `.spec.containers[name="app"].image`.
fn path_text(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Field(name) => {
                let _ = write!(text, ".{name}");
            }
            Step::Key(key) => {
                let fields = serde_json::from_str::<Map<String, Value>>(key).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let _ = write!(text, "[{}]", parts.join(","));
            }
            Step::Value(value) => {
                let _ = write!(text, "[={value}]");
            }
        }
    }
    text
}

/// Adds the fields of `value` found at `path` (`names`: the field names on the way, for
/// the list rules).
fn walk<'a>(
    value: &'a Value,
    path: FieldPath,
    names: &mut Vec<&'a str>,
    out: &mut BTreeSet<FieldPath>,
) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (name, child) in map {
                let mut child_path = path.clone();
                child_path.push(Step::Field(name.clone()));
                names.push(name);
                walk(child, child_path, names, out);
                names.pop();
            }
        }
        Value::Array(items) => match patch::list_strategy_of(names) {
            Some(ListStrategy::Key(key)) if items.iter().all(|i| i.get(key).is_some()) => {
                for item in items {
                    let mut element = path.clone();
                    element.push(Step::Key(key_of(item, key)));
                    out.insert(element.clone());
                    if let Value::Object(fields) = item {
                        for (name, child) in fields {
                            let mut child_path = element.clone();
                            child_path.push(Step::Field(name.clone()));
                            names.push(name);
                            walk(child, child_path, names, out);
                            names.pop();
                        }
                    }
                }
            }
            Some(ListStrategy::Set) if items.iter().all(Value::is_string) => {
                for item in items {
                    let mut element = path.clone();
                    element.push(Step::Value(item.to_string()));
                    out.insert(element);
                }
            }
            _ => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

fn key_of(item: &Value, key: &str) -> String {
    let mut fields = Map::new();
    if let Some(value) = item.get(key) {
        fields.insert(key.to_owned(), value.clone());
    }
    Value::Object(fields).to_string()
}

/// The value at `path` in `value`.
fn get<'a>(value: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut here = value;
    for step in path {
        here = child(here, step)?;
    }
    Some(here)
}

fn child<'a>(value: &'a Value, step: &Step) -> Option<&'a Value> {
    match step {
        Step::Field(name) => value.get(name),
        Step::Key(key) => {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            value
                .as_array()?
                .iter()
                .find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v)))
        }
        Step::Value(text) => {
            let wanted: Value = serde_json::from_str(text).ok()?;
            value.as_array()?.iter().find(|item| **item == wanted)
        }
    }
}

/// Where `step` is in `value`: the field's name, or the list element's index.
fn locate(value: &Value, step: &Step) -> Option<Located> {
    match step {
        Step::Field(name) => value.get(name).map(|_| Located::Field(name.clone())),
        Step::Key(_) | Step::Value(_) => {
            let found = child(value, step)?;
            let items = value.as_array()?;
            items
                .iter()
                .position(|item| std::ptr::eq(item, found))
                .map(Located::Index)
        }
    }
}

enum Located {
    Field(String),
    Index(usize),
}

/// Removes the field at `path` from `value`, if it is there.
fn remove(value: &mut Value, path: &[Step]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut parent = value;
    for step in parent_path {
        let next = match locate(parent, step) {
            Some(Located::Field(name)) => parent.get_mut(&name),
            Some(Located::Index(index)) => parent.get_mut(index),
            None => None,
        };
        let Some(next) = next else { return };
        parent = next;
    }
    match (locate(parent, last), parent) {
        (Some(Located::Field(name)), Value::Object(map)) => {
            map.remove(&name);
        }
        (Some(Located::Index(index)), Value::Array(items)) => {
            items.remove(index);
        }
        _ => {}
    }
}

/// The entries' field sets, read.
fn read_sets(entries: &[ManagedFieldsEntry]) -> Result<Vec<FieldSet>, ManagedFieldsError> {
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let value: Value = if entry.fields_v1.is_empty() {
                Value::Object(Map::new())
            } else {
                serde_json::from_str(&entry.fields_v1).map_err(|e| {
                    ManagedFieldsError::BadFields {
                        index,
                        reason: e.to_string(),
                    }
                })?
            };
            FieldSet::from_fields_v1(&value)
                .map_err(|reason| ManagedFieldsError::BadFields { index, reason })
        })
        .collect()
}

/// Who writes, and when.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    /// The field manager.
    pub(crate) manager: &'a str,
    /// The API version of the object written (`apps/v1`).
    pub(crate) api_version: &'a str,
    /// Now, RFC 3339.
    pub(crate) time: &'a str,
}

impl Writer<'_> {
    fn entry(&self, operation: &str, set: &FieldSet) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: self.manager.to_owned(),
            operation: operation.to_owned(),
            api_version: self.api_version.to_owned(),
            time: Some(self.time.to_owned()),
            fields_type: "FieldsV1".to_owned(),
            fields_v1: set.to_fields_v1().to_string(),
            subresource: String::new(),
        }
    }

    fn owns(&self, entry: &ManagedFieldsEntry, operation: &str) -> bool {
        entry.manager == self.manager
            && entry.operation == operation
            && entry.subresource.is_empty()
    }
}

/// The entries after `writer` wrote with `operation` the fields `set`: its own entry for
/// that operation holds `set`, the fields in `taken` leave every other entry, and entries
/// left with no fields go.
fn with_entry(
    entries: &[ManagedFieldsEntry],
    sets: &[FieldSet],
    writer: &Writer<'_>,
    operation: &str,
    set: &FieldSet,
    taken: &FieldSet,
) -> Vec<ManagedFieldsEntry> {
    let mut out = Vec::with_capacity(entries.len() + 1);
    let mut placed = false;
    for (entry, fields) in entries.iter().zip(sets) {
        if writer.owns(entry, operation) {
            if !set.is_empty() {
                out.push(writer.entry(operation, set));
            }
            placed = true;
            continue;
        }
        let kept = FieldSet(fields.0.difference(&taken.0).cloned().collect());
        if kept.is_empty() {
            continue;
        }
        if kept == *fields {
            out.push(entry.clone());
        } else {
            let mut entry = entry.clone();
            entry.fields_v1 = kept.to_fields_v1().to_string();
            out.push(entry);
        }
    }
    if !placed && !set.is_empty() {
        out.push(writer.entry(operation, set));
    }
    out
}

/// What an apply produces.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    /// The object to write, in the Kubernetes JSON shape (its `managedFields` are not
    /// set: they are `entries`).
    pub(crate) object: Value,
    /// Its managed fields.
    pub(crate) entries: Vec<ManagedFieldsEntry>,
}

/// Server-side apply of `applied` (the configuration as sent) over `current` (the stored
/// object, with `entries` its managed fields), as `writer`.
pub(crate) fn apply(
    current: &Value,
    entries: &[ManagedFieldsEntry],
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Applied, ManagedFieldsError> {
    let sets = read_sets(entries)?;
    let applying = FieldSet::of(applied);
    let mut conflicts = Vec::new();
    let mut taken = FieldSet::default();
    for (entry, fields) in entries.iter().zip(&sets) {
        if writer.owns(entry, APPLY) || !entry.subresource.is_empty() {
            continue;
        }
        for path in applying.0.intersection(&fields.0) {
            let Some(now) = get(current, path) else {
                continue;
            };
            if matches!(path.last(), Some(Step::Key(_) | Step::Value(_))) {
                continue;
            }
            if get(applied, path) != Some(now) {
                taken.0.insert(path.clone());
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    field: path_text(path),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ManagedFieldsError::Conflicts(conflicts));
    }
    let mut sent = applied.clone();
    if let Some(meta) = sent.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in UNOWNED_METADATA {
            meta.remove(*field);
        }
    }
    if let Some(map) = sent.as_object_mut() {
        map.remove("status");
    }
    let mut object = patch::strategic_merge_patch(current, &sent)?;
    let before: Option<&FieldSet> = entries
        .iter()
        .zip(&sets)
        .find(|(entry, _)| writer.owns(entry, APPLY))
        .map(|(_, set)| set);
    if let Some(before) = before {
        let others: Vec<&FieldSet> = entries
            .iter()
            .zip(&sets)
            .filter(|(entry, _)| !writer.owns(entry, APPLY))
            .map(|(_, set)| set)
            .collect();
        // Sorted, an element comes before its fields: removing the element removes them.
        for path in before.0.difference(&applying.0) {
            let owned_elsewhere = others.iter().any(|set| set.holds_under(path));
            let still_applied = applying.holds_under(path);
            if !owned_elsewhere && !still_applied {
                remove(&mut object, path);
            }
        }
    }
    let entries = with_entry(entries, &sets, writer, APPLY, &applying, &taken);
    Ok(Applied { object, entries })
}

/// The managed fields of an object `created` by `writer` (operation Update, as Kubernetes
/// records a create): every field it holds. Written straight into the FieldsV1 shape (the
/// same as `FieldSet::of(created).to_fields_v1()`), with no set of paths in between: every
/// create through the REST API pays for it.
pub(crate) fn track_create(created: &Value, writer: &Writer<'_>) -> Vec<ManagedFieldsEntry> {
    let fields = fields_v1_of(created);
    if fields == "{}" {
        return Vec::new();
    }
    vec![ManagedFieldsEntry {
        manager: writer.manager.to_owned(),
        operation: UPDATE.to_owned(),
        api_version: writer.api_version.to_owned(),
        time: Some(writer.time.to_owned()),
        fields_type: "FieldsV1".to_owned(),
        fields_v1: fields,
        subresource: String::new(),
    }]
}

/// Every owned field of `object` as FieldsV1 JSON text, written as it is walked: no tree
/// of the set is built. Keys come in the order a JSON map sorts them, so the text is the
/// same as `FieldSet::of(object).to_fields_v1().to_string()`.
fn fields_v1_of(object: &Value) -> String {
    /// Writes `"{prefix}{name}":` (escaped where needed).
    fn key(out: &mut String, prefix: &str, name: &str) {
        if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            out.push('"');
            out.push_str(prefix);
            out.push_str(name);
            out.push_str("\":");
        } else {
            let joined = format!("{prefix}{name}");
            out.push_str(&serde_json::to_string(&joined).unwrap_or_default());
            out.push(':');
        }
    }
    fn node<'a>(out: &mut String, value: &'a Value, names: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) if !map.is_empty() => fields(out, map, names, false),
            Value::Array(items) => match patch::list_strategy_of(names) {
                Some(ListStrategy::Key(k)) if items.iter().all(|i| i.get(k).is_some()) => {
                    // Sorted by their key text, the last of equal keys kept (as a map would).
                    let mut keyed: Vec<(String, &Map<String, Value>)> = Vec::new();
                    for item in items {
                        if let Value::Object(map) = item {
                            keyed.push((key_of(item, k), map));
                        }
                    }
                    keyed.reverse();
                    keyed.sort_by(|a, b| a.0.cmp(&b.0));
                    keyed.dedup_by(|later, earlier| later.0 == earlier.0);
                    out.push('{');
                    for (i, (text, map)) in keyed.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        key(out, "k:", text);
                        fields(out, map, names, true);
                    }
                    out.push('}');
                }
                Some(ListStrategy::Set) if items.iter().all(Value::is_string) => {
                    let mut texts: Vec<String> = items.iter().map(Value::to_string).collect();
                    texts.sort();
                    texts.dedup();
                    out.push('{');
                    for (i, text) in texts.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        key(out, "v:", text);
                        out.push_str("{}");
                    }
                    out.push('}');
                }
                _ => out.push_str("{}"),
            },
            _ => out.push_str("{}"),
        }
    }
    /// A map's fields; `element` adds the `".": {}` an element of a keyed list carries.
    fn fields<'a>(
        out: &mut String,
        map: &'a Map<String, Value>,
        names: &mut Vec<&'a str>,
        element: bool,
    ) {
        out.push('{');
        let mut first = true;
        if element {
            out.push_str("\".\":{}");
            first = false;
        }
        for (name, child) in map {
            if !first {
                out.push(',');
            }
            first = false;
            key(out, "f:", name);
            names.push(name);
            node(out, child, names);
            names.pop();
        }
        out.push('}');
    }
    let mut out = String::with_capacity(1024);
    out.push('{');
    let Value::Object(map) = object else {
        out.push('}');
        return out;
    };
    let mut first = true;
    for (name, value) in map {
        if UNOWNED_TOP.contains(&name.as_str()) {
            continue;
        }
        let mut names = vec![name.as_str()];
        if name == "metadata" {
            let Value::Object(meta) = value else { continue };
            let owned: Vec<(&String, &Value)> = meta
                .iter()
                .filter(|(field, _)| !UNOWNED_METADATA.contains(&field.as_str()))
                .collect();
            if owned.is_empty() {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            key(&mut out, "f:", name);
            out.push('{');
            for (i, (field, value)) in owned.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                key(&mut out, "f:", field);
                names.push(field);
                node(&mut out, value, &mut names);
                names.pop();
            }
            out.push('}');
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        key(&mut out, "f:", name);
        node(&mut out, value, &mut names);
    }
    out.push('}');
    out
}

/// The managed fields after `writer` changed `old` into `new` by a write other than an
/// apply: the fields that changed become its own and leave every other manager.
pub(crate) fn track_update(
    old: &Value,
    new: &Value,
    entries: &[ManagedFieldsEntry],
    writer: &Writer<'_>,
) -> Result<Vec<ManagedFieldsEntry>, ManagedFieldsError> {
    let sets = read_sets(entries)?;
    let before = FieldSet::of(old);
    let after = FieldSet::of(new);
    let mut changed = FieldSet::default();
    for path in before.0.union(&after.0) {
        let differs = match path.last() {
            Some(Step::Key(_) | Step::Value(_)) => {
                get(old, path).is_some() != get(new, path).is_some()
            }
            _ => get(old, path) != get(new, path),
        };
        if differs {
            changed.0.insert(path.clone());
        }
    }
    if changed.is_empty() {
        return Ok(entries.to_vec());
    }
    let mut mine = entries
        .iter()
        .zip(&sets)
        .find(|(entry, _)| writer.owns(entry, UPDATE))
        .map(|(_, set)| set.clone())
        .unwrap_or_default();
    mine.0.extend(changed.0.iter().cloned());
    mine.0.retain(|path| after.contains(path));
    Ok(with_entry(entries, &sets, writer, UPDATE, &mine, &changed))
}

/// Whether `a` and `b` differ at most in their resourceVersion and in when their
/// managed-fields entries last changed (a repeated apply, which writes nothing).
pub(crate) fn same_but_times(a: &rafter_proto::Object, b: &rafter_proto::Object) -> bool {
    let plain = |object: &rafter_proto::Object| {
        let mut object = object.clone();
        let meta = object.metadata_mut();
        meta.resource_version.clear();
        for entry in &mut meta.managed_fields {
            entry.time = None;
        }
        object
    };
    plain(a) == plain(b)
}

#[cfg(test)]
#[path = "managed_fields_test.rs"]
mod managed_fields_test;
