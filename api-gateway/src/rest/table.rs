//! The `meta.k8s.io/v1` Table answer (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`):
//! the columns and cells `rafter get` prints (`rafter_client::printing`, one definition for
//! both), the `-o wide` ones at priority 1, each row carrying its whole object so kubectl
//! can add NAMESPACE, labels and `-L` columns itself.
//!
//! Owns the Table's shape; the cells are `printing`'s.

use rafter_client::printing::{columns, row};
use rafter_proto::{Kind, Object};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// Whether an `Accept` header asks for a Table.
pub(crate) fn wanted(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
}

/// The column definitions of `kind`: the narrow ones at priority 0, the wide ones at 1.
fn definitions(kind: Kind) -> Vec<Value> {
    let narrow = columns(kind, false);
    columns(kind, true)
        .into_iter()
        .map(|name| {
            let priority = u8::from(!narrow.contains(&name));
            json!({
                "name": name,
                "type": "string",
                "format": if name == "NAME" { "name" } else { "" },
                "description": "",
                "priority": priority,
            })
        })
        .collect()
}

/// One row: every cell (the wide ones too) and the object.
fn table_row(object: &Object, value: Value, now: OffsetDateTime) -> Value {
    json!({"cells": row(object, true, now), "object": value})
}

/// A Table of `objects` (each with its JSON form) at `resource_version`.
pub(crate) fn table(
    kind: Kind,
    objects: Vec<(Object, Value)>,
    resource_version: &str,
    continue_token: &str,
) -> Value {
    let now = OffsetDateTime::now_utc();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|(object, value)| table_row(&object, value, now))
        .collect();
    let mut metadata = json!({"resourceVersion": resource_version});
    if !continue_token.is_empty() {
        metadata["continue"] = json!(continue_token);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": definitions(kind),
        "rows": rows,
    })
}

/// A one-row Table of an object in JSON form (a watch event's object), or the value as
/// it is when it is no object of `kind`.
pub(crate) fn of_value(kind: Kind, value: Value) -> Value {
    match Object::from_json_value(kind, value.clone()) {
        Ok(object) => {
            let rv = object.metadata().resource_version.clone();
            table(kind, vec![(object, value)], &rv, "")
        }
        Err(_) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_accept_header_asks_for_a_table_and_plain_json_does_not() {
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
    }

    #[test]
    fn wide_columns_are_priority_one_and_rows_carry_every_cell_and_the_object() {
        let pod = rafter_proto::parse_object(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: dev}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: busybox}]\n",
            "test",
        )
        .unwrap();
        let value = pod.to_json_value().unwrap();
        let t = table(Kind::Pod, vec![(pod, value)], "5", "");
        let defs = t["columnDefinitions"].as_array().unwrap();
        let node = defs.iter().find(|d| d["name"] == "NODE").unwrap();
        assert_eq!(node["priority"], 1);
        assert_eq!(defs[0]["name"], "NAME");
        assert_eq!(defs[0]["priority"], 0);
        let row = &t["rows"][0];
        assert_eq!(row["cells"][0], "web");
        assert_eq!(row["cells"].as_array().unwrap().len(), defs.len());
        assert_eq!(row["object"]["metadata"]["namespace"], "dev");
        assert_eq!(t["metadata"]["resourceVersion"], "5");
    }
}
