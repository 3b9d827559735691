//! How objects are printed: kubectl-like tables (`NAME READY STATUS RESTARTS AGE` …),
//! `-o wide`, `-o yaml`, `-o json` and `-o name`.
//!
//! Owns the rendering; it does no I/O beyond returning text. The columns and cells of
//! each kind are `rafter_client::printing`'s (the REST API's Table answers use the same),
//! re-exported here with the values `describe` shares ([`age`], [`selector_text`],
//! [`endpoints_text`]); timestamps ([`timestamp`]) are printed here.

use clap::ValueEnum;
pub use rafter_client::printing::{
    age, columns, endpoints_text, labels_selector_text, row, selector_text,
};
use rafter_proto::{Kind, Object};
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

/// Output formats of `get` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table with more columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON: one object, or a List.
    Json,
    /// `kind/name` lines.
    Name,
}

/// An RFC 3339 timestamp as `kubectl describe` prints one (RFC 1123 with a numeric zone:
/// `Tue, 05 Mar 2024 14:07:09 +0000`), the text as stored when it does not parse.
pub fn timestamp(text: &str) -> String {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .and_then(|at| at.format(&Rfc2822).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// `kind/name` as kubectl prints it (`deployment.apps/web`, `pod/web-1`).
pub fn qualified_name(object: &Object) -> String {
    let info = object.kind().info();
    let group = if info.group.is_empty() {
        String::new()
    } else {
        format!(".{}", info.group)
    };
    format!(
        "{}{group}/{}",
        info.name.to_ascii_lowercase(),
        object.metadata().name
    )
}

/// Renders objects in `format` (a table when `None`).
pub fn render(
    objects: &[Object],
    kind: Kind,
    format: Option<Format>,
    all_namespaces: bool,
) -> anyhow::Result<String> {
    match format {
        Some(Format::Yaml) => {
            let mut out = String::new();
            for (i, object) in objects.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&object.to_yaml()?);
            }
            Ok(out)
        }
        Some(Format::Json) => {
            let mut values = objects
                .iter()
                .map(Object::to_json_value)
                .collect::<Result<Vec<_>, _>>()?;
            let value = if values.len() == 1 {
                values.remove(0)
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values})
            };
            Ok(format!("{}\n", serde_json::to_string_pretty(&value)?))
        }
        Some(Format::Name) => Ok(objects
            .iter()
            .map(|o| format!("{}\n", qualified_name(o)))
            .collect()),
        Some(Format::Wide) => Ok(table(objects, kind, true, all_namespaces)),
        None => Ok(table(objects, kind, false, all_namespaces)),
    }
}

/// A table with aligned columns.
pub fn table(objects: &[Object], kind: Kind, wide: bool, all_namespaces: bool) -> String {
    let now = OffsetDateTime::now_utc();
    let (mut header, rows): (Vec<&str>, Vec<Vec<String>>) = (
        columns(kind, wide),
        objects.iter().map(|o| row(o, wide, now)).collect(),
    );
    let mut rows = rows;
    if all_namespaces && kind.info().namespaced {
        header.insert(0, "NAMESPACE");
        for (row, object) in rows.iter_mut().zip(objects) {
            row.insert(0, object.metadata().namespace.clone());
        }
    }
    crate::table::render(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_workload_tables_list_containers_images_and_the_selector() {
        let deployment = rafter_proto::parse_object(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: a, image: 'img:1'}\n      - {name: b, image: 'img:2'}\n",
            "test",
        )
        .unwrap();
        let text = table(&[deployment], Kind::Deployment, true, false);
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.contains("a,b") && row.contains("img:1,img:2") && row.contains("app=web"),
            "{text}"
        );
        let narrow = table(&[], Kind::Deployment, false, false);
        assert!(!narrow.contains("IMAGES"));
    }

    #[test]
    fn timestamps_print_as_kubectl_describe_does() {
        assert_eq!(
            timestamp("2024-03-05T14:07:09Z"),
            "Tue, 05 Mar 2024 14:07:09 +0000"
        );
        assert_eq!(timestamp("not a time"), "not a time");
    }
}
