//! `rafter set image`: change container images of a pod or a workload's pod template
//! with a strategic merge patch (containers merge by name, so other fields stay).

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use rafter_client::PatchType;
use rafter_proto::{Kind, Object};
use serde_json::{json, Value};

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    #[command(subcommand)]
    command: SetCommand,
}

/// The verbs of `rafter set`.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Change container images (Deployment, ReplicaSet, DaemonSet, Pod).
    #[command(
        after_help = "Examples:\n  rafter set image deployment/web nginx=nginx:1.27\n  rafter set image deploy web nginx=nginx:1.27 sidecar=envoy:1.30\n  rafter set image ds/agent '*=agent:2.0'     # every container"
    )]
    Image(ImageArgs),
}

/// `rafter set image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// `KIND/NAME` or `KIND NAME`, then `container=image` pairs (`*` for all containers).
    #[arg(required = true, num_args = 2.., value_name = "KIND/NAME CONTAINER=IMAGE")]
    args: Vec<String>,
}

/// Runs `rafter set`.
pub fn run(args: SetArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SetCommand::Image(args) => image(args, globals),
    }
}

fn image(args: ImageArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    // `KIND NAME c=i` or `KIND/NAME c=i`: the second word holds a `=` only in the latter.
    let (kind, name, rest) = kinds::target(&args.args, "set the image of")?;
    if rest.is_empty() {
        bail!("give at least one CONTAINER=IMAGE after {}", args.args[0]);
    }
    let mut wanted = Vec::new();
    for pair in rest {
        let Some((container, image)) = pair.split_once('=') else {
            bail!("{pair:?} is not CONTAINER=IMAGE");
        };
        if container.is_empty() || image.is_empty() {
            bail!("{pair:?}: both the container and the image must be given");
        }
        wanted.push((container.to_owned(), image.to_owned()));
    }
    if !matches!(
        kind,
        Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet | Kind::Pod | Kind::Job
    ) {
        bail!(
            "set image works on deployments, replicasets, daemonsets, jobs and pods, not {}",
            kind.info().plural
        );
    }
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    let current = kinds::fetch(&session, kind, &namespace, &name)?;
    let patch = image_patch(&current, &wanted)
        .map_err(|e| anyhow::anyhow!("{}: {e}", kinds::describe_target(kind, &namespace, &name)))?;
    session
        .block_on(session.client().patch(
            kind,
            &namespace,
            &name,
            PatchType::StrategicMerge,
            &patch,
        ))
        .map_err(|e| kinds::explain(e, kind, &namespace, &name))?;
    println!("{} image updated", kinds::qualified(kind, &name));
    Ok(ExitCode::SUCCESS)
}

/// The strategic merge patch that gives the named containers (init containers too) their
/// new images; an unknown container name is an error listing the known ones.
fn image_patch(object: &Object, wanted: &[(String, String)]) -> Result<Value, String> {
    let spec = kinds::pod_spec(object).cloned().unwrap_or_default();
    let mut containers = Vec::new();
    let mut init_containers = Vec::new();
    for (container, image) in wanted {
        let mut found = false;
        for c in &spec.containers {
            if container == "*" || &c.name == container {
                containers.push(json!({"name": c.name, "image": image}));
                found = true;
            }
        }
        for c in &spec.init_containers {
            if container == "*" || &c.name == container {
                init_containers.push(json!({"name": c.name, "image": image}));
                found = true;
            }
        }
        if !found {
            let known: Vec<&str> = spec
                .containers
                .iter()
                .chain(&spec.init_containers)
                .map(|c| c.name.as_str())
                .collect();
            return Err(format!(
                "it has no container {container:?} (its containers: {})",
                known.join(", ")
            ));
        }
    }
    let mut pod_spec = serde_json::Map::new();
    if !containers.is_empty() {
        pod_spec.insert("containers".into(), Value::Array(containers));
    }
    if !init_containers.is_empty() {
        pod_spec.insert("initContainers".into(), Value::Array(init_containers));
    }
    let pod_spec = Value::Object(pod_spec);
    Ok(match object {
        Object::Pod(_) => json!({ "spec": pod_spec }),
        _ => json!({ "spec": { "template": { "spec": pod_spec } } }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafter_proto::v1;

    fn deployment(containers: &[&str]) -> Object {
        Object::Deployment(v1::Deployment {
            spec: Some(v1::DeploymentSpec {
                template: Some(v1::PodTemplateSpec {
                    metadata: None,
                    spec: Some(Box::new(v1::PodSpec {
                        containers: containers
                            .iter()
                            .map(|n| v1::Container {
                                name: (*n).to_owned(),
                                image: "old".to_owned(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn the_patch_names_containers_in_the_template() {
        let patch = image_patch(&deployment(&["a", "b"]), &[("b".into(), "new".into())]).unwrap();
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "new"}]}}}})
        );
    }

    #[test]
    fn a_star_sets_every_container_and_an_unknown_name_is_refused() {
        let patch = image_patch(&deployment(&["a", "b"]), &[("*".into(), "x".into())]).unwrap();
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        let error = image_patch(&deployment(&["a"]), &[("zz".into(), "x".into())]).unwrap_err();
        assert!(error.contains("its containers: a"), "{error}");
    }
}
