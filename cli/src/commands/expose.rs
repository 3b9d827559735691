//! `rafter expose`: a Service in front of a Deployment, ReplicaSet or Pod, selecting
//! the pods by the workload's selector (or the pod's labels).

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rafter_proto::{v1, IntOrString, Kind, Object};

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// Service types `expose` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceType {
    /// A virtual IP inside the cluster (the default).
    #[value(name = "ClusterIP")]
    ClusterIp,
    /// A ClusterIP plus a port on every node.
    #[value(name = "NodePort")]
    NodePort,
    /// A NodePort plus an external load balancer, where one exists.
    #[value(name = "LoadBalancer")]
    LoadBalancer,
}

/// `rafter expose`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter expose deployment web --port 80 --target-port 8080\n  rafter expose deploy/web --port 80 --type NodePort --name web-public\n  rafter expose pod debug --port 9000"
)]
pub struct ExposeArgs {
    /// `KIND NAME` or `KIND/NAME`: a deployment, replicaset or pod.
    #[arg(required = true, num_args = 1..=2, value_name = "KIND NAME")]
    target: Vec<String>,
    /// The port the Service serves.
    #[arg(long)]
    port: i32,
    /// The port (number or name) on the pods [default: --port].
    #[arg(long)]
    target_port: Option<String>,
    /// TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP")]
    protocol: String,
    /// The Service type.
    #[arg(long = "type", value_enum, default_value = "ClusterIP")]
    service_type: ServiceType,
    /// The Service's name [default: the exposed object's].
    #[arg(long)]
    name: Option<String>,
}

/// Runs `rafter expose`.
pub fn run(args: ExposeArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (kind, name, _) = kinds::target(&args.target, "expose")?;
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    let object = kinds::fetch(&session, kind, &namespace, &name)?;
    let selector = selector_of(&object).map_err(|e| {
        anyhow::anyhow!(
            "cannot expose {}: {e}",
            kinds::describe_target(kind, &namespace, &name)
        )
    })?;
    let service_name = args.name.clone().unwrap_or_else(|| name.clone());
    let target_port = match &args.target_port {
        None => IntOrString::Int(args.port),
        Some(text) => match text.parse::<i32>() {
            Ok(n) => IntOrString::Int(n),
            Err(_) => IntOrString::String(text.clone()),
        },
    };
    let labels = object.metadata().labels.clone();
    let service = Object::Service(v1::Service {
        metadata: Some(v1::ObjectMeta {
            name: service_name.clone(),
            namespace: namespace.clone(),
            labels,
            ..Default::default()
        }),
        spec: Some(v1::ServiceSpec {
            ports: vec![v1::ServicePort {
                protocol: args.protocol.to_ascii_uppercase(),
                port: args.port,
                target_port: Some(target_port),
                ..Default::default()
            }],
            selector,
            r#type: match args.service_type {
                ServiceType::ClusterIp => "ClusterIP",
                ServiceType::NodePort => "NodePort",
                ServiceType::LoadBalancer => "LoadBalancer",
            }
            .to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    });
    session
        .block_on(session.client().create(service))
        .map_err(|e| kinds::explain(e, Kind::Service, &namespace, &service_name))?;
    println!("service/{service_name} exposed");
    Ok(ExitCode::SUCCESS)
}

/// The pod labels a Service for `object` selects by.
fn selector_of(object: &Object) -> Result<rafter_proto::StringMap, String> {
    let selector = match object {
        Object::Pod(pod) => {
            let labels = pod
                .metadata
                .as_ref()
                .map(|m| m.labels.clone())
                .unwrap_or_default();
            if labels.is_empty() {
                return Err("the pod has no labels to select it by; label it first".to_owned());
            }
            return Ok(labels);
        }
        Object::Deployment(d) => d.spec.as_ref().and_then(|s| s.selector.clone()),
        Object::ReplicaSet(rs) => rs.spec.as_ref().and_then(|s| s.selector.clone()),
        other => {
            return Err(format!(
                "expose works on deployments, replicasets and pods, not {}",
                other.kind().info().plural
            ))
        }
    };
    let selector = selector.unwrap_or_default();
    if !selector.match_expressions.is_empty() {
        return Err(
            "its selector uses matchExpressions, which a Service cannot express; write the Service by hand"
                .to_owned(),
        );
    }
    if selector.match_labels.is_empty() {
        return Err("its selector is empty".to_owned());
    }
    Ok(selector.match_labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_is_selected_by_its_match_labels() {
        let d = Object::Deployment(v1::Deployment {
            spec: Some(v1::DeploymentSpec {
                selector: Some(v1::LabelSelector {
                    match_labels: [("app".to_owned(), "web".to_owned())].into(),
                    match_expressions: vec![],
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(selector_of(&d).unwrap()["app"], "web");
        assert!(selector_of(&Object::Pod(Default::default())).is_err());
    }
}
