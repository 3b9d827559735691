//! OpenAPI schemas of the kinds, read from the proto definitions at run time
//! (`rafter_proto::FILE_DESCRIPTOR_SET`, with the `.proto` comments as descriptions and
//! the JSON names the serde mapping uses), so the documents follow the schema with no
//! second description of it.
//!
//! Owns the proto → OpenAPI type mapping: scalars, enums (strings), repeated fields
//! (arrays), maps (objects with `additionalProperties`), messages (`$ref`), IntOrString.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};
use rafter_proto::Kind;
use serde_json::{json, Map, Value};

/// The proto package of the kinds.
const PACKAGE: &str = "rafter.v1";

/// One message: its descriptor and its description.
struct MessageInfo {
    descriptor: DescriptorProto,
    description: String,
    /// Field name → description.
    fields: HashMap<String, String>,
}

/// Every message of the kinds' package, by full name (`.rafter.v1.Pod`), nested ones
/// (`.rafter.v1.Pod.Entry`) included.
fn messages() -> &'static HashMap<String, MessageInfo> {
    static MESSAGES: OnceLock<HashMap<String, MessageInfo>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let mut out = HashMap::new();
        let Ok(set) = FileDescriptorSet::decode(rafter_proto::FILE_DESCRIPTOR_SET) else {
            tracing::error!(
                "the built-in proto descriptors do not decode; OpenAPI schemas are empty"
            );
            return out;
        };
        for file in set.file.iter().filter(|f| f.package() == PACKAGE) {
            let comments: HashMap<Vec<i32>, String> = file
                .source_code_info
                .iter()
                .flat_map(|info| info.location.iter())
                .filter_map(|l| {
                    l.leading_comments
                        .as_ref()
                        .map(|c| (l.path.clone(), tidy(c)))
                })
                .collect();
            for (i, message) in file.message_type.iter().enumerate() {
                let path = vec![4, i32::try_from(i).unwrap_or(i32::MAX)];
                collect(&format!(".{PACKAGE}"), message, path, &comments, &mut out);
            }
        }
        out
    })
}

fn collect(
    scope: &str,
    message: &DescriptorProto,
    path: Vec<i32>,
    comments: &HashMap<Vec<i32>, String>,
    out: &mut HashMap<String, MessageInfo>,
) {
    let name = format!("{scope}.{}", message.name());
    let mut fields = HashMap::new();
    for (j, field) in message.field.iter().enumerate() {
        let mut field_path = path.clone();
        field_path.extend([2, i32::try_from(j).unwrap_or(i32::MAX)]);
        if let Some(text) = comments.get(&field_path) {
            fields.insert(field.name().to_owned(), text.clone());
        }
    }
    for (j, nested) in message.nested_type.iter().enumerate() {
        let mut nested_path = path.clone();
        nested_path.extend([3, i32::try_from(j).unwrap_or(i32::MAX)]);
        collect(&name, nested, nested_path, comments, out);
    }
    out.insert(
        name,
        MessageInfo {
            descriptor: message.clone(),
            description: comments.get(&path).cloned().unwrap_or_default(),
            fields,
        },
    );
}

/// A comment as a description: lines trimmed and joined.
fn tidy(comment: &str) -> String {
    comment
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A version tag of the schemas (changes when the proto definitions do).
pub(super) fn hash() -> String {
    // FNV-1a over the descriptors.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in rafter_proto::FILE_DESCRIPTOR_SET {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// The schema name of a message (`.rafter.v1.Pod` → `rafter.v1.Pod`).
fn schema_name(full: &str) -> String {
    full.trim_start_matches('.').to_owned()
}

/// The schema name of a kind.
pub(super) fn name_of(kind: Kind) -> String {
    format!("{PACKAGE}.{}", kind.name())
}

/// The JSON name of a field, as the serde mapping writes it.
fn json_name(message: &str, field: &str) -> String {
    let short = message.rsplit('.').next().unwrap_or(message);
    let key = format!("{short}.{field}");
    if let Some((_, renamed)) = rafter_proto::JSON_RENAMES.iter().find(|(k, _)| *k == key) {
        return (*renamed).to_owned();
    }
    let mut out = String::new();
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The schemas of `kinds` and every message they reach, `$ref`s starting with `prefix`.
pub(crate) fn schemas(kinds: &[Kind], prefix: &str) -> Value {
    let all = messages();
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let mut todo: Vec<String> = kinds
        .iter()
        .map(|k| format!(".{PACKAGE}.{}", k.name()))
        .collect();
    while let Some(name) = todo.pop() {
        let key = schema_name(&name);
        if out.contains_key(&key) {
            continue;
        }
        let Some(info) = all.get(&name) else {
            continue;
        };
        let mut properties = Map::new();
        for field in &info.descriptor.field {
            let mut property = field_schema(field, prefix, &mut todo);
            if let Some(text) = info.fields.get(field.name()) {
                if let Some(map) = property.as_object_mut() {
                    map.insert("description".to_owned(), json!(text));
                }
            }
            properties.insert(json_name(&name, field.name()), property);
        }
        let mut schema = json!({
            "type": "object",
            "description": info.description,
            "properties": properties,
        });
        if let Some(kind) = Kind::all().find(|k| format!(".{PACKAGE}.{}", k.name()) == name) {
            let i = kind.info();
            schema["x-kubernetes-group-version-kind"] =
                json!([{"group": i.group, "version": i.version, "kind": i.name}]);
        }
        out.insert(key, schema);
    }
    json!(out)
}

/// The schema of one field.
fn field_schema(
    field: &prost_types::FieldDescriptorProto,
    prefix: &str,
    todo: &mut Vec<String>,
) -> Value {
    let all = messages();
    let one = |todo: &mut Vec<String>| -> Value {
        match field.r#type() {
            Type::Message if field.type_name().ends_with(".IntOrString") => json!({
                "x-kubernetes-int-or-string": true,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
            }),
            Type::Message => {
                todo.push(field.type_name().to_owned());
                json!({"allOf": [{"$ref": format!("{prefix}{}", schema_name(field.type_name()))}]})
            }
            // JSON text in the proto, a JSON object on the wire (managedFields' fieldsV1).
            Type::String if field.name() == "fields_v1" => json!({"type": "object"}),
            Type::String | Type::Enum => json!({"type": "string"}),
            Type::Bytes => json!({"type": "string", "format": "byte"}),
            Type::Bool => json!({"type": "boolean"}),
            Type::Double | Type::Float => json!({"type": "number", "format": "double"}),
            Type::Int64 | Type::Uint64 | Type::Sint64 | Type::Fixed64 | Type::Sfixed64 => {
                json!({"type": "integer", "format": "int64"})
            }
            _ => json!({"type": "integer", "format": "int32"}),
        }
    };
    if field.label() == Label::Repeated {
        // A map field is a repeated nested `…Entry` message with map_entry set.
        if field.r#type() == Type::Message {
            if let Some(entry) = all
                .get(field.type_name())
                .filter(|m| m.descriptor.options.as_ref().is_some_and(|o| o.map_entry()))
            {
                let value = entry
                    .descriptor
                    .field
                    .iter()
                    .find(|f| f.name() == "value")
                    .map(|f| field_schema(f, prefix, todo))
                    .unwrap_or_else(|| json!({"type": "string"}));
                return json!({"type": "object", "additionalProperties": value});
            }
        }
        return json!({"type": "array", "items": one(todo)});
    }
    one(todo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_schema_reaches_its_spec_and_containers_with_json_names() {
        let schemas = schemas(&[Kind::Pod], "#/components/schemas/");
        let pod = &schemas["rafter.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert_eq!(
            pod["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/rafter.v1.PodSpec"
        );
        let spec = &schemas["rafter.v1.PodSpec"];
        assert_eq!(spec["properties"]["containers"]["type"], "array");
        assert!(spec["properties"]["nodeName"].is_object(), "{spec}");
        let status = &schemas["rafter.v1.PodStatus"];
        assert!(status["properties"]["podIP"].is_object(), "{status}");
        let meta = &schemas["rafter.v1.ObjectMeta"];
        assert_eq!(meta["properties"]["labels"]["type"], "object");
    }
}
