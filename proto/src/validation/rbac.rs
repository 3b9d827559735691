//! `rbac.authorization.k8s.io/v1`: Role, ClusterRole, RoleBinding, ClusterRoleBinding.
//!
//! Owns the shape of rules, role references and subjects. It must not check that a
//! referenced role or service account exists, nor evaluate what a rule grants.

use super::{meta, names, Errors, Path};
use crate::v1;

const ROLE_REF_KINDS: &[&str] = &["Role", "ClusterRole"];
const SUBJECT_KINDS: &[&str] = &["User", "Group", "ServiceAccount"];
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

fn rules(rules: &[v1::PolicyRule], path: &Path, cluster_scoped: bool, errs: &mut Errors) {
    for (i, rule) in rules.iter().enumerate() {
        let r_path = path.index(i);
        if rule.verbs.is_empty() {
            errs.required(
                &r_path.child("verbs"),
                "verbs must contain at least one value",
            );
        }
        if !rule.non_resource_urls.is_empty() {
            if !cluster_scoped {
                errs.invalid(
                    &r_path.child("nonResourceURLs"),
                    rule.non_resource_urls.join(","),
                    "namespaced rules cannot apply to non-resource URLs",
                );
            }
            if !rule.api_groups.is_empty()
                || !rule.resources.is_empty()
                || !rule.resource_names.is_empty()
            {
                errs.invalid(
                    &r_path.child("nonResourceURLs"),
                    rule.non_resource_urls.join(","),
                    "rules cannot apply to both regular resources and non-resource URLs",
                );
            }
            continue;
        }
        if rule.api_groups.is_empty() {
            errs.required(
                &r_path.child("apiGroups"),
                "resource rules must supply at least one api group",
            );
        }
        if rule.resources.is_empty() {
            errs.required(
                &r_path.child("resources"),
                "resource rules must supply at least one resource",
            );
        }
    }
}

pub(super) fn role(role: &v1::Role, errs: &mut Errors) {
    self::rules(&role.rules, &Path::root("rules"), false, errs);
}

pub(super) fn cluster_role(role: &v1::ClusterRole, errs: &mut Errors) {
    self::rules(&role.rules, &Path::root("rules"), true, errs);
    if let Some(aggregation) = &role.aggregation_rule {
        let path = Path::root("aggregationRule").child("clusterRoleSelectors");
        for (i, selector) in aggregation.cluster_role_selectors.iter().enumerate() {
            meta::label_selector(selector, &path.index(i), errs);
        }
    }
}

fn role_ref(role_ref: Option<&v1::RoleRef>, namespaced_binding: bool, errs: &mut Errors) {
    let path = Path::root("roleRef");
    let Some(role_ref) = role_ref else {
        errs.required(&path, "");
        return;
    };
    let allowed: &'static [&'static str] = if namespaced_binding {
        ROLE_REF_KINDS
    } else {
        &["ClusterRole"]
    };
    errs.enum_value(&path.child("kind"), &role_ref.kind, allowed);
    if !role_ref.api_group.is_empty() && role_ref.api_group != RBAC_GROUP {
        errs.not_supported(&path.child("apiGroup"), &role_ref.api_group, &[RBAC_GROUP]);
    }
    errs.name(
        &path.child("name"),
        &role_ref.name,
        names::path_segment_name,
    );
}

fn subjects(subjects: &[v1::Subject], namespaced_binding: bool, errs: &mut Errors) {
    for (i, subject) in subjects.iter().enumerate() {
        let path = Path::root("subjects").index(i);
        errs.enum_value(&path.child("kind"), &subject.kind, SUBJECT_KINDS);
        errs.non_empty(&path.child("name"), &subject.name);
        match subject.kind.as_str() {
            "ServiceAccount" => {
                if !subject.api_group.is_empty() {
                    errs.not_supported(&path.child("apiGroup"), &subject.api_group, &[""]);
                }
                if !subject.name.is_empty() {
                    errs.format(&path.child("name"), &subject.name, names::dns1123_subdomain);
                }
                if !namespaced_binding && subject.namespace.is_empty() {
                    errs.required(&path.child("namespace"), "");
                }
            }
            "User" | "Group"
                if !subject.api_group.is_empty() && subject.api_group != RBAC_GROUP =>
            {
                errs.not_supported(&path.child("apiGroup"), &subject.api_group, &[RBAC_GROUP]);
            }
            _ => {}
        }
    }
}

pub(super) fn role_binding(binding: &v1::RoleBinding, errs: &mut Errors) {
    role_ref(binding.role_ref.as_ref(), true, errs);
    subjects(&binding.subjects, true, errs);
}

pub(super) fn cluster_role_binding(binding: &v1::ClusterRoleBinding, errs: &mut Errors) {
    role_ref(binding.role_ref.as_ref(), false, errs);
    subjects(&binding.subjects, false, errs);
}
