//! [`Policy`]: which requests are audited at which [`Level`], in Kubernetes'
//! `audit.k8s.io/v1` Policy shape. The first rule that matches decides; no match: None.

use serde::{Deserialize, Serialize};

use super::AuditError;

/// How much of a request is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// Not recorded.
    None,
    /// Who, what verb, which object, from where, the response code.
    Metadata,
    /// Metadata and the request body.
    Request,
}

/// Resources whose bodies are never recorded: the level is capped at Metadata.
const BODIES_NEVER_LOGGED: &[(&str, &str)] = &[
    ("", "secrets"),
    ("", "configmaps"),
    ("authentication.k8s.io", "tokenreviews"),
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GroupResources {
    #[serde(default)]
    group: String,
    #[serde(default)]
    resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    level: Level,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resources: Vec<GroupResources>,
    #[serde(default)]
    namespaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    api_version: String,
    kind: String,
    #[serde(default)]
    omit_stages: Vec<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

/// A validated audit policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_request_received: bool,
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The user name.
    pub user: &'a str,
    /// The user's groups.
    pub groups: &'a [String],
    /// The verb.
    pub verb: &'a str,
    /// The API group ("" for core).
    pub group: &'a str,
    /// The plural resource ("" for a non-resource request).
    pub resource: &'a str,
    /// The namespace ("" for cluster-scoped).
    pub namespace: &'a str,
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == value || v == "*")
}

impl Rule {
    fn matches(&self, r: &Request<'_>) -> bool {
        listed(&self.users, r.user)
            && (self.user_groups.is_empty()
                || r.groups.iter().any(|g| self.user_groups.contains(g)))
            && listed(&self.verbs, r.verb)
            && listed(&self.namespaces, r.namespace)
            && (self.resources.is_empty()
                || self
                    .resources
                    .iter()
                    .any(|g| g.group == r.group && listed(&g.resources, r.resource)))
    }
}

impl Policy {
    /// Parses and validates a policy (YAML or JSON).
    pub fn parse(text: &str) -> Result<Policy, AuditError> {
        let file: File =
            serde_yaml::from_str(text).map_err(|e| AuditError::Policy(e.to_string()))?;
        if file.api_version != "audit.k8s.io/v1" || file.kind != "Policy" {
            return Err(AuditError::Policy(format!(
                "expected apiVersion audit.k8s.io/v1 and kind Policy, found {} {}",
                file.api_version, file.kind
            )));
        }
        let mut omit_request_received = false;
        for stage in &file.omit_stages {
            match stage.as_str() {
                "RequestReceived" => omit_request_received = true,
                "ResponseStarted" | "ResponseComplete" | "Panic" => {}
                other => {
                    return Err(AuditError::Policy(format!(
                        "omitStages: unknown stage {other:?}"
                    )))
                }
            }
        }
        Ok(Policy {
            rules: file.rules,
            omit_request_received,
        })
    }

    /// Every request at level Metadata (what `--audit-log-path` without a policy file does).
    pub fn metadata_for_all() -> Policy {
        Policy {
            rules: vec![Rule {
                level: Level::Metadata,
                users: vec![],
                user_groups: vec![],
                verbs: vec![],
                resources: vec![],
                namespaces: vec![],
            }],
            omit_request_received: true,
        }
    }

    /// The level of `request`: the first matching rule's, capped at Metadata for resources
    /// whose bodies are never logged.
    pub fn level(&self, request: &Request<'_>) -> Level {
        let level = self
            .rules
            .iter()
            .find(|rule| rule.matches(request))
            .map_or(Level::None, |rule| rule.level);
        if BODIES_NEVER_LOGGED.contains(&(request.group, request.resource)) {
            level.min(Level::Metadata)
        } else {
            level
        }
    }

    /// Whether RequestReceived events are left out.
    pub fn omits_request_received(&self) -> bool {
        self.omit_request_received
    }
}
