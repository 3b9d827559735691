//! The workloads: ReplicaSet, Deployment and DaemonSet (`apps/v1`), Job and CronJob
//! (`batch/v1`).
//!
//! Owns counts, update strategies and the selector/template pairing of each workload; the
//! template's pod spec is checked by `pod` with the restart policies the workload allows.
//! It must not reason about the pods a workload owns.

use super::meta::selector_matches_template;
use super::pod::{pod_template, RestartRule};
use super::{meta, Errors, Path};
use crate::v1;
use crate::v1::{LabelSelector, PodTemplateSpec};
use crate::IntOrString;

const DEPLOYMENT_STRATEGIES: &[&str] = &["RollingUpdate", "Recreate"];
const DAEMON_SET_STRATEGIES: &[&str] = &["RollingUpdate", "OnDelete"];
const COMPLETION_MODES: &[&str] = &["NonIndexed", "Indexed"];
const CONCURRENCY_POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];
/// Pod failure policy actions Rafter carries out (FailIndex needs backoffLimitPerIndex,
/// which Rafter does not have).
const POD_FAILURE_ACTIONS: &[&str] = &["FailJob", "Ignore", "Count"];
const EXIT_CODE_OPERATORS: &[&str] = &["In", "NotIn"];
/// A CronJob's name leaves room for the 11 characters of its Jobs' suffix.
const MAX_CRON_JOB_NAME: usize = 52;

fn optional_non_negative(path: &Path, value: Option<i32>, errs: &mut Errors) {
    if let Some(value) = value {
        errs.non_negative(path, value.into());
    }
}

pub(super) fn replica_set(rs: &v1::ReplicaSet, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &rs.spec else {
        errs.required(&path, "");
        return;
    };
    optional_non_negative(&path.child("replicas"), spec.replicas, errs);
    errs.non_negative(
        &path.child("minReadySeconds"),
        spec.min_ready_seconds.into(),
    );
    selected_template(
        spec.selector.as_ref(),
        spec.template.as_ref(),
        &path,
        "replicaset",
        errs,
    );
}

pub(super) fn deployment(deploy: &v1::Deployment, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &deploy.spec else {
        errs.required(&path, "");
        return;
    };
    optional_non_negative(&path.child("replicas"), spec.replicas, errs);
    errs.non_negative(
        &path.child("minReadySeconds"),
        spec.min_ready_seconds.into(),
    );
    optional_non_negative(
        &path.child("revisionHistoryLimit"),
        spec.revision_history_limit,
        errs,
    );
    if let Some(deadline) = spec.progress_deadline_seconds {
        let deadline_path = path.child("progressDeadlineSeconds");
        errs.non_negative(&deadline_path, deadline.into());
        if deadline >= 0 && deadline <= spec.min_ready_seconds {
            errs.invalid(
                &deadline_path,
                deadline,
                "must be greater than minReadySeconds",
            );
        }
    }
    selected_template(
        spec.selector.as_ref(),
        spec.template.as_ref(),
        &path,
        "deployment",
        errs,
    );
    if let Some(strategy) = &spec.strategy {
        update_strategy(
            &path.child("strategy"),
            &strategy.r#type,
            DEPLOYMENT_STRATEGIES,
            "Recreate",
            strategy
                .rolling_update
                .as_ref()
                .map(|r| (r.max_surge.as_ref(), r.max_unavailable.as_ref())),
            errs,
        );
    }
}

/// A workload whose pods always restart: its selector must match its template's labels and
/// the template must be a valid pod template with restartPolicy Always.
fn selected_template(
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    spec: &Path,
    kind_name: &str,
    errs: &mut Errors,
) {
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    selector_matches_template(selector, template_meta, spec, kind_name, errs);
    pod_template(
        template,
        &spec.child("template"),
        RestartRule::AlwaysOnly,
        errs,
    );
}

/// An update strategy: its `type` is one of `allowed`, and its rollingUpdate parameters
/// (maxSurge, maxUnavailable) are valid, or forbidden when `type` is `not_rolling`.
fn update_strategy(
    path: &Path,
    kind: &str,
    allowed: &'static [&'static str],
    not_rolling: &str,
    rolling: Option<(Option<&IntOrString>, Option<&IntOrString>)>,
    errs: &mut Errors,
) {
    errs.optional_enum_value(&path.child("type"), kind, allowed);
    let Some((max_surge, max_unavailable)) = rolling else {
        return;
    };
    let r_path = path.child("rollingUpdate");
    if kind == not_rolling {
        errs.forbidden(
            &r_path,
            format!("may not be specified when strategy `type` is '{not_rolling}'"),
        );
    } else {
        rolling_update(max_surge, max_unavailable, &r_path, errs);
    }
}

/// maxSurge and maxUnavailable: integers ≥ 0 or percentages, maxUnavailable at most 100%,
/// and not both zero (the rollout could never progress).
fn rolling_update(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    path: &Path,
    errs: &mut Errors,
) {
    let surge = max_surge.and_then(|v| int_or_percent(&path.child("maxSurge"), v, errs));
    let unavailable =
        max_unavailable.and_then(|v| int_or_percent(&path.child("maxUnavailable"), v, errs));
    if let (Some(value), Some(amount)) = (max_unavailable, unavailable) {
        if matches!(value, IntOrString::String(_)) && amount > 100 {
            errs.invalid(
                &path.child("maxUnavailable"),
                value,
                "must not be greater than 100%",
            );
        }
    }
    if surge == Some(0) && unavailable == Some(0) {
        if let Some(value) = max_unavailable {
            errs.invalid(
                &path.child("maxUnavailable"),
                value,
                "may not be 0 when `maxSurge` is 0",
            );
        }
    }
}

/// The integer or percentage a field holds, or `None` (reported) when it is neither or
/// below zero.
fn int_or_percent(path: &Path, value: &IntOrString, errs: &mut Errors) -> Option<i64> {
    let amount = match value {
        IntOrString::Int(n) => Some(i64::from(*n)),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|digits| digits.parse::<i64>().ok()),
    };
    match amount {
        None => {
            errs.invalid(path, value, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')");
            None
        }
        Some(n) if n < 0 => {
            errs.invalid(path, value, super::names::NON_NEGATIVE);
            None
        }
        some => some,
    }
}

pub(super) fn daemon_set(ds: &v1::DaemonSet, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &ds.spec else {
        errs.required(&path, "");
        return;
    };
    errs.non_negative(
        &path.child("minReadySeconds"),
        spec.min_ready_seconds.into(),
    );
    optional_non_negative(
        &path.child("revisionHistoryLimit"),
        spec.revision_history_limit,
        errs,
    );
    selected_template(
        spec.selector.as_ref(),
        spec.template.as_ref(),
        &path,
        "daemonset",
        errs,
    );
    if let Some(strategy) = &spec.update_strategy {
        update_strategy(
            &path.child("updateStrategy"),
            &strategy.r#type,
            DAEMON_SET_STRATEGIES,
            "OnDelete",
            strategy
                .rolling_update
                .as_ref()
                .map(|r| (r.max_surge.as_ref(), r.max_unavailable.as_ref())),
            errs,
        );
    }
}

pub(super) fn job(job: &v1::Job, errs: &mut Errors) {
    let path = Path::root("spec");
    let Some(spec) = &job.spec else {
        errs.required(&path, "");
        return;
    };
    job_spec(spec, &path, errs);
}

pub(super) fn cron_job(cron: &v1::CronJob, errs: &mut Errors) {
    let name = cron.metadata.as_ref().map_or("", |m| m.name.as_str());
    if name.len() > MAX_CRON_JOB_NAME {
        errs.invalid(
            &Path::root("metadata").child("name"),
            name,
            format!("must be no more than {MAX_CRON_JOB_NAME} characters"),
        );
    }
    let path = Path::root("spec");
    let Some(spec) = &cron.spec else {
        errs.required(&path, "");
        return;
    };
    if spec.schedule.trim().is_empty() {
        errs.required(&path.child("schedule"), "");
    } else {
        if let Err(e) = crate::CronSchedule::parse(&spec.schedule, None) {
            errs.invalid(&path.child("schedule"), &spec.schedule, e.to_string());
        }
    }
    if let Some(zone) = spec.time_zone.as_deref() {
        if let Err(e) = crate::CronSchedule::parse("* * * * *", Some(zone)) {
            errs.invalid(&path.child("timeZone"), zone, e.to_string());
        }
    }
    errs.optional_enum_value(
        &path.child("concurrencyPolicy"),
        &spec.concurrency_policy,
        CONCURRENCY_POLICIES,
    );
    if let Some(deadline) = spec.starting_deadline_seconds {
        errs.non_negative(&path.child("startingDeadlineSeconds"), deadline);
    }
    optional_non_negative(
        &path.child("successfulJobsHistoryLimit"),
        spec.successful_jobs_history_limit,
        errs,
    );
    optional_non_negative(
        &path.child("failedJobsHistoryLimit"),
        spec.failed_jobs_history_limit,
        errs,
    );
    let template = path.child("jobTemplate");
    match spec.job_template.as_ref().and_then(|t| t.spec.as_ref()) {
        Some(job) => job_spec(job, &template.child("spec"), errs),
        None => errs.required(&template.child("spec"), ""),
    }
}

fn pod_failure_policy(
    policy: &v1::PodFailurePolicy,
    restart_policy: &str,
    path: &Path,
    errs: &mut Errors,
) {
    if !restart_policy.is_empty() && restart_policy != "Never" {
        errs.invalid(
            &path.child("template").child("spec").child("restartPolicy"),
            restart_policy,
            "only \"Never\" is supported when podFailurePolicy is specified",
        );
    }
    let rules = path.child("podFailurePolicy").child("rules");
    for (i, rule) in policy.rules.iter().enumerate() {
        let rule_path = rules.index(i);
        if rule.action.is_empty() {
            errs.required(&rule_path.child("action"), "");
        } else if !POD_FAILURE_ACTIONS.contains(&rule.action.as_str()) {
            errs.not_supported(
                &rule_path.child("action"),
                &rule.action,
                POD_FAILURE_ACTIONS,
            );
        }
        match (&rule.on_exit_codes, rule.on_pod_conditions.is_empty()) {
            (Some(_), false) | (None, true) => errs.invalid(
                &rule_path,
                "",
                "specify exactly one of onExitCodes and onPodConditions",
            ),
            _ => {}
        }
        if let Some(codes) = &rule.on_exit_codes {
            let codes_path = rule_path.child("onExitCodes");
            if !EXIT_CODE_OPERATORS.contains(&codes.operator.as_str()) {
                errs.not_supported(
                    &codes_path.child("operator"),
                    &codes.operator,
                    EXIT_CODE_OPERATORS,
                );
            }
            if codes.values.is_empty() {
                errs.required(&codes_path.child("values"), "");
            }
            if codes.operator == "In" && codes.values.contains(&0) {
                errs.invalid(
                    &codes_path.child("values"),
                    0,
                    "must not be 0 for the In operator",
                );
            }
        }
        for (j, pattern) in rule.on_pod_conditions.iter().enumerate() {
            let p = rule_path.child("onPodConditions").index(j);
            if pattern.r#type.is_empty() {
                errs.required(&p.child("type"), "");
            }
        }
    }
}

fn job_spec(spec: &v1::JobSpec, path: &Path, errs: &mut Errors) {
    let path = path.clone();
    if let Some(policy) = &spec.pod_failure_policy {
        let restart = spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .map_or("", |s| s.restart_policy.as_str());
        pod_failure_policy(policy, restart, &path, errs);
    }
    optional_non_negative(&path.child("parallelism"), spec.parallelism, errs);
    optional_non_negative(&path.child("completions"), spec.completions, errs);
    optional_non_negative(&path.child("backoffLimit"), spec.backoff_limit, errs);
    optional_non_negative(
        &path.child("ttlSecondsAfterFinished"),
        spec.ttl_seconds_after_finished,
        errs,
    );
    if let Some(deadline) = spec.active_deadline_seconds {
        if deadline < 1 {
            errs.invalid(
                &path.child("activeDeadlineSeconds"),
                deadline,
                "must be greater than or equal to 1",
            );
        }
    }
    errs.optional_enum_value(
        &path.child("completionMode"),
        &spec.completion_mode,
        COMPLETION_MODES,
    );
    if spec.completion_mode == "Indexed" && spec.completions.is_none() {
        errs.required(
            &path.child("completions"),
            "when completion mode is Indexed",
        );
    }
    // The selector is generated when absent; a given one must match the template.
    if let Some(selector) = &spec.selector {
        if !meta::selector_is_empty(selector) {
            let template_meta = spec.template.as_ref().and_then(|t| t.metadata.as_ref());
            selector_matches_template(Some(selector), template_meta, &path, "job", errs);
        }
    }
    pod_template(
        spec.template.as_ref(),
        &path.child("template"),
        RestartRule::Job,
        errs,
    );
}
