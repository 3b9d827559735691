//! `rafter label` and `rafter annotate`: set (`k=v`) and remove (`k-`) labels or
//! annotations with a JSON merge patch. Changing an existing value needs `--overwrite`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rafter_client::PatchType;
use serde_json::{json, Map, Value};

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter label`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter label pods web-1 tier=frontend\n  rafter label deploy/web team=payments env=prod\n  rafter label nodes w1 disk=ssd --overwrite\n  rafter label pods web-1 tier-      # remove the label"
)]
pub struct LabelArgs {
    #[command(flatten)]
    common: MetaArgs,
}

/// `rafter annotate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter annotate deploy web kubernetes.io/change-cause='image 1.2'\n  rafter annotate pods web-1 owner=jane --overwrite\n  rafter annotate pods web-1 owner-      # remove the annotation"
)]
pub struct AnnotateArgs {
    #[command(flatten)]
    common: MetaArgs,
}

/// What `label` and `annotate` share.
#[derive(Debug, Args)]
struct MetaArgs {
    /// `KIND NAME` or `KIND/NAME`, then `key=value` to set and `key-` to remove.
    #[arg(required = true, num_args = 1.., value_name = "KIND NAME KEY=VALUE|KEY-")]
    args: Vec<String>,
    /// Replace values that are already set.
    #[arg(long)]
    overwrite: bool,
}

/// Runs `rafter label`.
pub fn label(args: LabelArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    run(args.common, globals, "labels", "labeled")
}

/// Runs `rafter annotate`.
pub fn annotate(args: AnnotateArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    run(args.common, globals, "annotations", "annotated")
}

/// The changes `k=v` and `k-` ask for: `Some(value)` sets, `None` removes.
fn parse_changes(changes: &[String]) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for change in changes {
        if let Some((key, value)) = change.split_once('=') {
            if key.is_empty() {
                bail!("{change:?}: the key is empty (write key=value)");
            }
            out.insert(key.to_owned(), Some(value.to_owned()));
        } else if let Some(key) = change.strip_suffix('-') {
            out.insert(key.to_owned(), None);
        } else {
            bail!("{change:?} is neither key=value (to set) nor key- (to remove)");
        }
    }
    if out.is_empty() {
        bail!("give at least one key=value or key- after the object");
    }
    Ok(out)
}

fn run(args: MetaArgs, globals: &GlobalArgs, field: &str, done: &str) -> anyhow::Result<ExitCode> {
    let (kind, name, rest) = kinds::target(&args.args, "change")?;
    let changes = parse_changes(rest)?;
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    let current = kinds::fetch(&session, kind, &namespace, &name)?;
    let meta = current.metadata();
    let existing = if field == "labels" {
        &meta.labels
    } else {
        &meta.annotations
    };
    let singular = field.trim_end_matches('s');
    let mut patch = Map::new();
    for (key, value) in &changes {
        match value {
            Some(value) => {
                if let Some(old) = existing.get(key) {
                    if old != value && !args.overwrite {
                        bail!(
                            "{}: {singular} {key:?} already has the value {old:?}; pass --overwrite to replace it",
                            kinds::describe_target(kind, &namespace, &name)
                        );
                    }
                }
                patch.insert(key.clone(), Value::String(value.clone()));
            }
            None => {
                if !existing.contains_key(key) {
                    eprintln!("{singular} {key:?} not found.");
                }
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    let body = json!({ "metadata": { field: Value::Object(patch) } });
    session
        .block_on(
            session
                .client()
                .patch(kind, &namespace, &name, PatchType::Merge, &body),
        )
        .map_err(|e| kinds::explain(e, kind, &namespace, &name))?;
    println!("{} {done}", kinds::qualified(kind, &name));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_set_and_remove_keys() {
        let changes = parse_changes(&["a=1".to_owned(), "b-".to_owned(), "c=".to_owned()]).unwrap();
        assert_eq!(changes["a"], Some("1".to_owned()));
        assert_eq!(changes["b"], None);
        assert_eq!(changes["c"], Some(String::new()));
        assert!(parse_changes(&["nothing".to_owned()]).is_err());
        assert!(parse_changes(&[]).is_err());
    }
}
