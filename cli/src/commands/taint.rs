//! `rafter taint`: add (`key=value:Effect`, `key:Effect`) and remove (`key:Effect-`,
//! `key-`) taints on nodes. The node is updated with the resourceVersion read, so a
//! concurrent change is reported, not overwritten.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use rafter_proto::{v1, Kind, Object};

use crate::kinds;
use crate::session::{GlobalArgs, Session};

const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

/// `rafter taint`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter taint nodes w1 dedicated=gpu:NoSchedule\n  rafter taint node w1 maintenance:NoExecute\n  rafter taint nodes w1 dedicated:NoSchedule-   # remove that taint\n  rafter taint nodes w1 dedicated-              # remove every taint with the key"
)]
pub struct TaintArgs {
    /// `nodes NAME` (or `node/NAME`), then taints to add or remove.
    #[arg(required = true, num_args = 2.., value_name = "nodes NAME TAINT")]
    args: Vec<String>,
    /// Replace the value of a taint with the same key and effect.
    #[arg(long)]
    overwrite: bool,
}

/// One change a command-line word asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Add(v1::Taint),
    /// Remove taints with the key, and the effect when given.
    Remove {
        key: String,
        effect: Option<String>,
    },
}

fn parse(word: &str) -> Result<Change, String> {
    let check_effect = |effect: &str| {
        if EFFECTS.contains(&effect) {
            Ok(())
        } else {
            Err(format!(
                "{word:?}: unknown effect {effect:?} (use {})",
                EFFECTS.join(", ")
            ))
        }
    };
    if let Some(rest) = word.strip_suffix('-') {
        let (key, effect) = match rest.split_once(':') {
            Some((key, effect)) => {
                check_effect(effect)?;
                (key, Some(effect.to_owned()))
            }
            None => (rest, None),
        };
        let key = key.split_once('=').map(|(k, _)| k).unwrap_or(key);
        if key.is_empty() {
            return Err(format!("{word:?}: the key is empty"));
        }
        return Ok(Change::Remove {
            key: key.to_owned(),
            effect,
        });
    }
    let Some((key_value, effect)) = word.split_once(':') else {
        return Err(format!(
            "{word:?} is not a taint: write key=value:Effect or key:Effect (add), key:Effect- or key- (remove)"
        ));
    };
    check_effect(effect)?;
    let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
    if key.is_empty() {
        return Err(format!("{word:?}: the key is empty"));
    }
    Ok(Change::Add(v1::Taint {
        key: key.to_owned(),
        value: value.to_owned(),
        effect: effect.to_owned(),
        time_added: None,
    }))
}

/// Applies the changes to a node's taints.
fn apply(taints: &mut Vec<v1::Taint>, changes: &[Change], overwrite: bool) -> Result<(), String> {
    for change in changes {
        match change {
            Change::Add(taint) => {
                if let Some(existing) = taints
                    .iter_mut()
                    .find(|t| t.key == taint.key && t.effect == taint.effect)
                {
                    if existing.value != taint.value && !overwrite {
                        return Err(format!(
                            "it already has a taint with key {:?} and effect {:?} (value {:?}); pass --overwrite to replace it",
                            taint.key, taint.effect, existing.value
                        ));
                    }
                    existing.value = taint.value.clone();
                } else {
                    taints.push(taint.clone());
                }
            }
            Change::Remove { key, effect } => {
                let before = taints.len();
                taints
                    .retain(|t| !(&t.key == key && effect.as_ref().is_none_or(|e| &t.effect == e)));
                if taints.len() == before {
                    return Err(format!(
                        "taint {key:?}{} not found",
                        effect
                            .as_ref()
                            .map(|e| format!(" with effect {e:?}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs `rafter taint`.
pub fn run(args: TaintArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (kind, name, rest) = kinds::target(&args.args, "taint")?;
    if kind != Kind::Node {
        bail!("only nodes can be tainted, not {}", kind.info().plural);
    }
    if rest.is_empty() {
        bail!("give at least one taint after the node name, like dedicated=gpu:NoSchedule");
    }
    let changes = rest
        .iter()
        .map(|w| parse(w))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let session = Session::connect(globals)?;
    // The node's agent writes its status now and then: a Conflict means "read again and
    // redo the change".
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Object::Node(mut node) = kinds::fetch(&session, Kind::Node, "", &name)? else {
            bail!("the server answered with another kind for node {name:?}");
        };
        let spec = node.spec.get_or_insert_with(Default::default);
        apply(&mut spec.taints, &changes, args.overwrite)
            .map_err(|e| anyhow::anyhow!("node {name:?}: {e}"))?;
        match session.block_on(session.client().update(Object::Node(node))) {
            Ok(_) => break,
            Err(rafter_client::ClientError::Conflict { .. }) if attempt < 5 => continue,
            Err(e) => return Err(kinds::explain(e, Kind::Node, "", &name)),
        }
    }
    let removed = changes.iter().all(|c| matches!(c, Change::Remove { .. }));
    println!(
        "node/{name} {}",
        if removed { "untainted" } else { "tainted" }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> v1::Taint {
        v1::Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn words_parse_into_additions_and_removals() {
        assert_eq!(
            parse("a=b:NoSchedule").unwrap(),
            Change::Add(taint("a", "b", "NoSchedule"))
        );
        assert_eq!(
            parse("a:NoExecute").unwrap(),
            Change::Add(taint("a", "", "NoExecute"))
        );
        assert_eq!(
            parse("a:NoSchedule-").unwrap(),
            Change::Remove {
                key: "a".into(),
                effect: Some("NoSchedule".into())
            }
        );
        assert_eq!(
            parse("a-").unwrap(),
            Change::Remove {
                key: "a".into(),
                effect: None
            }
        );
        assert!(parse("a=b:Sometimes").is_err());
        assert!(parse("a=b").is_err());
    }

    #[test]
    fn a_changed_value_needs_overwrite_and_a_missing_taint_cannot_be_removed() {
        let mut taints = vec![taint("a", "1", "NoSchedule")];
        let change = [Change::Add(taint("a", "2", "NoSchedule"))];
        assert!(apply(&mut taints, &change, false).is_err());
        apply(&mut taints, &change, true).unwrap();
        assert_eq!(taints, vec![taint("a", "2", "NoSchedule")]);
        let remove = [Change::Remove {
            key: "b".into(),
            effect: None,
        }];
        assert!(apply(&mut taints, &remove, false).is_err());
    }
}
