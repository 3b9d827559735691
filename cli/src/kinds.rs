//! What the object verbs (`describe`, `edit`, `label`, `scale`, `rollout` ...) share:
//! naming a target (`KIND NAME` or `KIND/NAME`), the namespace it lives in, the error
//! message a failed call turns into, and access to a workload's pod template.
//!
//! Owns no I/O beyond the one read [`fetch`] does.

use anyhow::anyhow;
use rafter_client::ClientError;
use rafter_proto::{v1, Kind, Object};

use crate::session::Session;

/// Resolves a kind the way a user types it (`deploy`, `pods`, `Deployment`).
pub fn resolve(typed: &str) -> anyhow::Result<Kind> {
    Kind::resolve(typed).map_err(|e| anyhow!("{e} (run `rafter api-resources` for the kinds)"))
}

/// The kind and name of `KIND NAME` or `KIND/NAME`, and the arguments left after them.
pub fn target<'a>(args: &'a [String], verb: &str) -> anyhow::Result<(Kind, String, &'a [String])> {
    let Some(first) = args.first() else {
        anyhow::bail!("say what to {verb}: KIND NAME or KIND/NAME");
    };
    if let Some((kind, name)) = first.split_once('/') {
        return Ok((resolve(kind)?, name.to_owned(), &args[1..]));
    }
    let Some(name) = args.get(1) else {
        anyhow::bail!("say which {first} to {verb}: KIND NAME or KIND/NAME");
    };
    Ok((resolve(first)?, name.clone(), &args[2..]))
}

/// The namespace a `kind` object is addressed in: the session's, or "" when the kind
/// is cluster-scoped.
pub fn namespace(kind: Kind, session: &Session) -> String {
    if kind.info().namespaced {
        session.namespace().to_owned()
    } else {
        String::new()
    }
}

/// `deployment.apps/web`, as kubectl names an object in its messages.
pub fn qualified(kind: Kind, name: &str) -> String {
    let info = kind.info();
    if info.group.is_empty() {
        format!("{}/{name}", info.name.to_ascii_lowercase())
    } else {
        format!("{}.{}/{name}", info.name.to_ascii_lowercase(), info.group)
    }
}

/// `Deployment "web" in namespace "default"`, or `Node "w1"`.
pub fn describe_target(kind: Kind, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{} {name:?}", kind.name())
    } else {
        format!("{} {name:?} in namespace {namespace:?}", kind.name())
    }
}

/// Turns a failed call about one object into a message that names it and says what to do.
pub fn explain(error: ClientError, kind: Kind, namespace: &str, name: &str) -> anyhow::Error {
    let what = describe_target(kind, namespace, name);
    let hint = match &error {
        ClientError::NotFound { .. } => format!(
            "check the name with `rafter get {}`{}",
            kind.info().plural,
            if namespace.is_empty() {
                String::new()
            } else {
                " (or pick the namespace with -n)".to_owned()
            }
        ),
        ClientError::Conflict { .. } => {
            "it was changed by someone else since it was read; run the command again".to_owned()
        }
        ClientError::AlreadyExists { .. } => {
            "pick another name, or change the existing one with `rafter apply -f`".to_owned()
        }
        ClientError::Invalid { causes, .. } if !causes.is_empty() => {
            format!("fix: {}", causes.join("; "))
        }
        ClientError::Forbidden { .. } | ClientError::Unauthenticated { .. } => {
            "check the credentials of the context (`rafter config view`)".to_owned()
        }
        ClientError::NoMasterAvailable { .. } => {
            "is the cluster running? (`rafter cluster status`, `rafter up`)".to_owned()
        }
        ClientError::OutcomeUnknown { .. } => {
            let namespace = if namespace.is_empty() {
                String::new()
            } else {
                format!(" -n {namespace}")
            };
            format!(
                "the change may or may not have been made: check with `rafter get {}{}{namespace}` before running the command again",
                kind.info().plural,
                if name.is_empty() { String::new() } else { format!(" {name}") },
            )
        }
        _ => String::new(),
    };
    if hint.is_empty() {
        anyhow!("{what}: {error}")
    } else {
        anyhow!("{what}: {error}; {hint}")
    }
}

/// Reads one object, with a message naming it when that fails.
pub fn fetch(session: &Session, kind: Kind, namespace: &str, name: &str) -> anyhow::Result<Object> {
    session
        .block_on(session.client().get(kind, namespace, name))
        .map_err(|e| explain(e, kind, namespace, name))
}

/// The pod template of a workload (Deployment, ReplicaSet, DaemonSet, Job).
pub fn pod_template(object: &Object) -> Option<&v1::PodTemplateSpec> {
    match object {
        Object::Deployment(d) => d.spec.as_ref()?.template.as_ref(),
        Object::ReplicaSet(rs) => rs.spec.as_ref()?.template.as_ref(),
        Object::DaemonSet(ds) => ds.spec.as_ref()?.template.as_ref(),
        Object::Job(job) => job.spec.as_ref()?.template.as_ref(),
        _ => None,
    }
}

/// The pod spec of a pod, or of a workload's template.
pub fn pod_spec(object: &Object) -> Option<&v1::PodSpec> {
    match object {
        Object::Pod(pod) => pod.spec.as_ref(),
        other => pod_template(other)?.spec.as_deref(),
    }
}

/// The controller owner reference of an object, if it has one.
pub fn controller_of(meta: &v1::ObjectMeta) -> Option<&v1::OwnerReference> {
    meta.owner_references
        .iter()
        .find(|o| o.controller == Some(true))
}

/// Parses `30s`, `5m`, `1h`, `500ms` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 30s, 5m, 1h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ))
        }
    };
    Ok(std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(
            parse_duration("30s"),
            Ok(std::time::Duration::from_secs(30))
        );
        assert_eq!(
            parse_duration("2m"),
            Ok(std::time::Duration::from_secs(120))
        );
        assert_eq!(parse_duration("7"), Ok(std::time::Duration::from_secs(7)));
        assert_eq!(
            parse_duration("250ms"),
            Ok(std::time::Duration::from_millis(250))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn qualified_names_carry_the_group() {
        assert_eq!(qualified(Kind::Deployment, "web"), "deployment.apps/web");
        assert_eq!(qualified(Kind::Pod, "p"), "pod/p");
    }

    #[test]
    fn a_write_of_unknown_outcome_says_it_may_have_happened_and_how_to_check() {
        let unknown = || ClientError::OutcomeUnknown {
            endpoint: "127.0.0.1:6443".to_owned(),
            message: "the master fell silent".to_owned(),
        };
        let message = explain(unknown(), Kind::Deployment, "default", "web").to_string();
        assert!(
            message.contains("may or may not have been made"),
            "{message}"
        );
        assert!(
            message.contains("`rafter get deployments web -n default`"),
            "{message}"
        );
        let message = explain(unknown(), Kind::ConfigMap, "default", "").to_string();
        assert!(
            message.contains("`rafter get configmaps -n default`"),
            "a generated name is listed: {message}"
        );
    }
}
