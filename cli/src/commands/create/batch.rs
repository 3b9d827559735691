//! The batch objects `rafter create job` and `rafter create cronjob` make, as
//! `kubectl create` builds them: one container named after the object running the image
//! with the command after `--`; a Job's pods never restart (`restartPolicy: Never`), a
//! CronJob's restart on failure (`OnFailure`). `create job --from=cronjob/NAME` copies the
//! CronJob's job template into a Job it owns, marked as started by hand.

use anyhow::bail;
use rafter_proto::{v1, Object};

/// The annotation kubectl puts on a Job started by hand from a CronJob.
pub const INSTANTIATE_ANNOTATION: &str = "cronjob.kubernetes.io/instantiate";

fn template(name: &str, image: &str, command: &[String], restart: &str) -> v1::PodTemplateSpec {
    v1::PodTemplateSpec {
        metadata: None,
        spec: Some(Box::new(v1::PodSpec {
            restart_policy: restart.to_owned(),
            containers: vec![v1::Container {
                name: name.to_owned(),
                image: image.to_owned(),
                command: command.to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        })),
    }
}

/// A Job running `image` (with `command`, if any) once.
pub fn job(name: &str, image: &str, command: &[String]) -> Object {
    Object::Job(v1::Job {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::JobSpec {
            template: Some(template(name, image, command, "Never")),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// A CronJob running `image` (with `command`) on `schedule`.
pub fn cron_job(
    name: &str,
    image: &str,
    schedule: &str,
    command: &[String],
) -> anyhow::Result<Object> {
    if let Err(e) = rafter_proto::CronSchedule::parse(schedule, None) {
        bail!("--schedule: {e}");
    }
    Ok(Object::CronJob(v1::CronJob {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            ..Default::default()
        }),
        spec: Some(v1::CronJobSpec {
            schedule: schedule.to_owned(),
            job_template: Some(Box::new(v1::JobTemplateSpec {
                metadata: Some(v1::ObjectMeta {
                    name: name.to_owned(),
                    ..Default::default()
                }),
                spec: Some(v1::JobSpec {
                    template: Some(template(name, image, command, "OnFailure")),
                    ..Default::default()
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// A Job named `name` from a CronJob's template, owned by the CronJob.
pub fn job_from_cron_job(name: &str, cron: &Object) -> anyhow::Result<Object> {
    let Object::CronJob(c) = cron else {
        bail!("--from: only cronjob/NAME is supported");
    };
    let template = c
        .spec
        .as_ref()
        .and_then(|s| s.job_template.as_deref())
        .cloned()
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations;
    annotations.insert(INSTANTIATE_ANNOTATION.to_owned(), "manual".to_owned());
    let owner = cron.metadata();
    Ok(Object::Job(v1::Job {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            labels: tmeta.labels,
            annotations,
            owner_references: vec![v1::OwnerReference {
                api_version: "batch/v1".to_owned(),
                kind: "CronJob".to_owned(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            ..Default::default()
        }),
        spec: template.spec,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_the_command_once_in_a_container_named_after_it() {
        let Object::Job(j) = job(
            "pi",
            "busybox",
            &["sh".into(), "-c".into(), "echo hi".into()],
        ) else {
            panic!()
        };
        let pod = j.spec.unwrap().template.unwrap().spec.unwrap();
        assert_eq!(pod.restart_policy, "Never");
        assert_eq!(pod.containers[0].name, "pi");
        assert_eq!(pod.containers[0].command, vec!["sh", "-c", "echo hi"]);
    }

    #[test]
    fn a_cron_job_with_a_bad_schedule_is_refused_before_sending() {
        let err = cron_job("c", "busybox", "61 * * * *", &[]).unwrap_err();
        assert!(err.to_string().contains("--schedule"), "{err}");
        assert!(cron_job("c", "busybox", "@hourly", &[]).is_ok());
    }

    #[test]
    fn a_job_from_a_cron_job_copies_its_template_and_is_owned_by_it() {
        let mut cron = cron_job("nightly", "busybox", "@daily", &["date".into()]).unwrap();
        cron.metadata_mut().uid = "u1".to_owned();
        let Object::Job(j) = job_from_cron_job("nightly-manual", &cron).unwrap() else {
            panic!()
        };
        let m = j.metadata.unwrap();
        assert_eq!(m.annotations[INSTANTIATE_ANNOTATION], "manual");
        assert_eq!(m.owner_references[0].uid, "u1");
        assert_eq!(m.owner_references[0].kind, "CronJob");
        let pod = j.spec.unwrap().template.unwrap().spec.unwrap();
        assert_eq!(pod.containers[0].command, vec!["date"]);
    }
}
