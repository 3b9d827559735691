//! Which nodes a pod may run on: taints against tolerations, `nodeSelector`, and node
//! affinity (required terms and preferred weights).
//!
//! Owns these matching rules, shared by the scheduler (filter and score), the DaemonSet
//! controller (which nodes get a daemon pod) and node lifecycle (which pods a NoExecute
//! taint evicts). It must not look at resources or at other pods; the scheduler does that.
//!
//! Rules, as in Kubernetes:
//! - a toleration matches a taint when its effect is empty or equal, its key is empty or
//!   equal, and it is `Exists` or (`Equal`/empty operator) with an equal value; so an
//!   empty key with `Exists` tolerates every taint;
//! - required node affinity: `nodeSelectorTerms` are ORed, the requirements inside a term
//!   ANDed; an empty term matches nothing; `Gt`/`Lt` compare the label and the single value
//!   as integers and fail when either does not parse;
//! - `matchFields` supports `metadata.name`, the only field Kubernetes supports.

use rafter_proto::v1::{
    self, NodeSelectorRequirement, NodeSelectorTerm, PodSpec, Taint, Toleration,
};

/// Taint effects.
pub const NO_SCHEDULE: &str = "NoSchedule";
/// Taint effects.
pub const PREFER_NO_SCHEDULE: &str = "PreferNoSchedule";
/// Taint effects.
pub const NO_EXECUTE: &str = "NoExecute";

/// Whether `toleration` tolerates `taint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if !toleration.effect.is_empty() && toleration.effect != taint.effect {
        return false;
    }
    if !toleration.key.is_empty() && toleration.key != taint.key {
        return false;
    }
    match toleration.operator.as_str() {
        "Exists" => true,
        "" | "Equal" => toleration.value == taint.value,
        _ => false,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn first_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerated(tolerations, t))
}

/// How many PreferNoSchedule taints the pod does not tolerate (a score penalty).
pub fn untolerated_prefer_no_schedule(taints: &[Taint], tolerations: &[Toleration]) -> usize {
    taints
        .iter()
        .filter(|t| t.effect == PREFER_NO_SCHEDULE)
        .filter(|t| {
            !tolerations
                .iter()
                .filter(|tol| tol.effect.is_empty() || tol.effect == PREFER_NO_SCHEDULE)
                .any(|tol| tolerates(tol, t))
        })
        .count()
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| req.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, req.values.as_slice()) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(bound)) if req.operator == "Gt" => v > bound,
                (Ok(v), Ok(bound)) => v < bound,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a node (its labels and name) satisfies one node selector term.
pub fn term_matches(term: &NodeSelectorTerm, labels: &rafter_proto::StringMap, name: &str) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    let name = name.to_owned();
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key)))
        && term
            .match_fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(&name)))
}

/// Whether the node satisfies the pod's `nodeSelector` and required node affinity.
pub fn matches_node_selector_and_affinity(
    spec: &PodSpec,
    labels: &rafter_proto::StringMap,
    name: &str,
) -> bool {
    if !spec
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(selector) => selector
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, labels, name)),
    }
}

/// The sum of the weights of the pod's preferred node affinity terms the node matches.
pub fn preferred_affinity_weight(
    spec: &PodSpec,
    labels: &rafter_proto::StringMap,
    name: &str,
) -> i64 {
    spec.affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .map_or(0, |na| {
            na.preferred_during_scheduling_ignored_during_execution
                .iter()
                .filter(|p| {
                    p.preference
                        .as_ref()
                        .is_some_and(|t| term_matches(t, labels, name))
                })
                .map(|p| i64::from(p.weight))
                .sum()
        })
}

/// A node's labels, name and taints, borrowed.
pub fn node_parts(node: &v1::Node) -> (&rafter_proto::StringMap, &str, &[Taint]) {
    static EMPTY: rafter_proto::StringMap = rafter_proto::StringMap::new();
    let (labels, name) = node
        .metadata
        .as_ref()
        .map_or((&EMPTY, ""), |m| (&m.labels, m.name.as_str()));
    let taints = node.spec.as_ref().map_or(&[][..], |s| s.taints.as_slice());
    (labels, name, taints)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    /// The taint/toleration matrix: (toleration key, operator, value, effect) against the
    /// taint `spray=mortein:<effect>`.
    #[test]
    fn tolerations_match_taints_by_key_operator_value_and_effect() {
        let table = [
            (
                ("spray", "Equal", "mortein", "NoSchedule"),
                "NoSchedule",
                true,
            ),
            (
                ("spray", "Equal", "raid", "NoSchedule"),
                "NoSchedule",
                false,
            ),
            (("spray", "", "mortein", "NoSchedule"), "NoSchedule", true),
            (("spray", "Exists", "", "NoSchedule"), "NoSchedule", true),
            (("spray", "Exists", "", ""), "NoExecute", true),
            (("spray", "Equal", "mortein", ""), "PreferNoSchedule", true),
            (
                ("spray", "Equal", "mortein", "NoExecute"),
                "NoSchedule",
                false,
            ),
            (("other", "Exists", "", ""), "NoSchedule", false),
            (("", "Exists", "", ""), "NoExecute", true),
            (("", "Exists", "", "NoSchedule"), "NoExecute", false),
            (("spray", "Bogus", "mortein", ""), "NoSchedule", false),
        ];
        for ((key, op, value, effect), taint_effect, want) in table {
            let tol = toleration(key, op, value, effect);
            let t = taint("spray", "mortein", taint_effect);
            assert_eq!(tolerates(&tol, &t), want, "{tol:?} vs {t:?}");
        }
    }

    #[test]
    fn affinity_operators_follow_kubernetes() {
        let mut labels = rafter_proto::StringMap::new();
        labels.insert("size".to_owned(), "Large".to_owned());
        labels.insert("cores".to_owned(), "8".to_owned());
        let table = [
            (req("size", "In", &["Large", "Medium"]), true),
            (req("size", "In", &["Small"]), false),
            (req("size", "NotIn", &["Small"]), true),
            (req("size", "NotIn", &["Large"]), false),
            (req("color", "NotIn", &["blue"]), true),
            (req("size", "Exists", &[]), true),
            (req("color", "Exists", &[]), false),
            (req("color", "DoesNotExist", &[]), true),
            (req("size", "DoesNotExist", &[]), false),
            (req("cores", "Gt", &["4"]), true),
            (req("cores", "Gt", &["8"]), false),
            (req("cores", "Lt", &["16"]), true),
            (req("size", "Gt", &["4"]), false),
            (req("cores", "Gt", &["x"]), false),
            (req("cores", "Gt", &[]), false),
            (req("size", "Like", &["L"]), false),
        ];
        for (r, want) in table {
            let t = term(vec![r.clone()]);
            assert_eq!(term_matches(&t, &labels, "n1"), want, "{r:?}");
        }
    }

    #[test]
    fn terms_are_ored_and_requirements_anded() {
        let mut labels = rafter_proto::StringMap::new();
        labels.insert("size".to_owned(), "Large".to_owned());
        let spec = pod("d", "p")
            .required_terms(vec![
                term(vec![
                    req("size", "In", &["Large"]),
                    req("gpu", "Exists", &[]),
                ]),
                term(vec![req("size", "In", &["Medium"])]),
            ])
            .build_pod()
            .spec
            .unwrap_or_default();
        assert!(!matches_node_selector_and_affinity(&spec, &labels, "n1"));
        labels.insert("gpu".to_owned(), "1".to_owned());
        assert!(matches_node_selector_and_affinity(&spec, &labels, "n1"));
        labels.insert("size".to_owned(), "Medium".to_owned());
        labels.remove("gpu");
        assert!(matches_node_selector_and_affinity(&spec, &labels, "n1"));
        let empty_term = pod("d", "p").required_terms(vec![term(vec![])]).build_pod();
        assert!(!matches_node_selector_and_affinity(
            empty_term.spec.as_ref().unwrap(),
            &labels,
            "n1"
        ));
    }

    #[test]
    fn match_fields_select_by_node_name() {
        let mut t = term(vec![]);
        t.match_fields = vec![req("metadata.name", "In", &["n2"])];
        assert!(term_matches(&t, &rafter_proto::StringMap::new(), "n2"));
        assert!(!term_matches(&t, &rafter_proto::StringMap::new(), "n1"));
    }
}
