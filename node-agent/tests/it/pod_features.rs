//! Pod-spec features end to end on the agent (process backend always; containerd when
//! `RAFTER_CONTAINERD_SOCK` is set): `$(VAR)` expansion, startupProbe, container log
//! rotation.

use rafter_proto::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

use crate::agent::{delete_and_wait, pod, sh, wait_log};
use crate::cluster::{Cluster, TestNode};
use crate::harness::Runtime;

pub async fn command_args_and_env_values_expand_var_references(rt: Runtime) {
    let cluster = Cluster::start().await;
    let node = TestNode::start(&cluster, rt).await;
    let literal = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: value.into(),
        ..Default::default()
    };
    // `$(A)` in the script is ours to expand; left alone, sh would run a command `A`.
    let mut app = sh(
        "app",
        "echo CMD=$(A) B=$B D=$D ARG1=$1 ARG2=$2 LATE=$LATE; exec sleep 300",
    );
    app.args = vec!["argv0".into(), "$(B)".into(), "$$(B)".into()];
    app.env = vec![
        literal("A", "one"),
        literal("B", "$(A)-two"),
        EnvVar {
            name: "POD".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: "v1".into(),
                    field_path: "metadata.name".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        // Only what is defined before a value is visible to it: LATE is not, yet.
        literal("D", "$(POD)/$(LATE)/$$(A)"),
        literal("LATE", "late"),
    ];
    cluster
        .create_pod(pod("expand", &node.name, vec![app]))
        .await;
    let p = cluster
        .wait_pod("expand", "created", |p| {
            p.status.as_ref().map(|_| p.clone())
        })
        .await;
    wait_log(
        &node,
        &p,
        "app",
        "CMD=one B=one-two D=expand/$(LATE)/$(A) ARG1=one-two ARG2=$(B) LATE=late",
    )
    .await;
    delete_and_wait(&cluster, &node, "expand").await;
}
