//! The object verbs (`create`, `scale`, `set image`, `label`, `taint`, `rollout undo`,
//! `certificate approve` ...) driven against a real `rafter up --detach --agents 0`
//! cluster: the controllers run (a rollout's ReplicaSets are theirs), no agent does, so
//! each check is about the objects the verbs write. `e2e.rs` runs pods too.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::cluster::{eventually, Cluster};
use crate::support::rafter_with_env;

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: w1
status:
  capacity: {cpu: '4', memory: 8Gi, pods: '110'}
  allocatable: {cpu: '4', memory: 8Gi, pods: '110'}
  conditions:
  - {type: Ready, status: 'True', reason: KubeletReady, message: ready}
  addresses:
  - {type: InternalIP, address: 10.0.0.1}
";

fn image_of(deployment: &Value) -> String {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the deployment controller has recorded `revision` of Deployment `name`.
fn wait_for_revision(c: &Cluster, name: &str, revision: u32) {
    eventually(
        &format!("the controller to record revision {revision}"),
        Duration::from_secs(60),
        || {
            let history = c.ok(&["rollout", "history", &format!("deployment/{name}")]);
            history
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&revision.to_string()))
                .then_some(())
        },
    );
}

#[test]
fn object_verbs_change_a_live_cluster_as_a_user_would() {
    let c = Cluster::start("object-verbs");

    // version asks the cluster who leads.
    assert!(c.ok(&["version"]).contains("leader"));

    // cluster status asks each master for itself: all three healthy, whichever answers.
    let status: Value = eventually("three healthy masters", Duration::from_secs(30), || {
        let run = c.run(&["cluster", "status", "-o", "json"]);
        let status: Value = serde_json::from_str(&run.stdout).ok()?;
        let members = status["members"].as_array()?;
        (members.len() == 3 && members.iter().all(|m| m["healthy"] == true)).then_some(status)
    });
    let leaders = status["members"].as_array().unwrap();
    assert_eq!(
        leaders.iter().filter(|m| m["leader"] == true).count(),
        1,
        "{status}"
    );
    let table = c.ok(&["cluster", "status"]);
    assert!(!table.contains(" no "), "{table}");

    // create deployment, scale, set image: the generation moves with each spec change.
    let out = c.ok(&[
        "create",
        "deployment",
        "web",
        "--image",
        "nginx:1",
        "--replicas",
        "1",
    ]);
    assert!(out.contains("deployment.apps/web created"), "{out}");
    // The controllers act on the state they find: had they started only after the image
    // change below (a master's controllers start once its first list works), they would
    // make one ReplicaSet, of nginx:2. Revision 2 below needs them to have seen nginx:1.
    wait_for_revision(&c, "web", 1);
    let before = c.json(&["get", "deploy", "web"]);
    c.ok(&["scale", "deploy", "web", "--replicas", "3"]);
    let scaled = c.json(&["get", "deploy", "web"]);
    assert_eq!(scaled["spec"]["replicas"], 3);
    let out = c.ok(&["set", "image", "deployment/web", "nginx=nginx:2"]);
    assert!(out.contains("image updated"), "{out}");
    let after = c.json(&["get", "deploy", "web"]);
    assert_eq!(image_of(&after), "nginx:2");
    assert!(
        after["metadata"]["generation"].as_i64() > before["metadata"]["generation"].as_i64(),
        "{after}"
    );
    let error = c.fails(&["set", "image", "deploy/web", "nope=x:1"]);
    assert!(error.contains("its containers: nginx"), "{error}");

    // create -f is create only.
    let error = c.fails(&[
        "create",
        "-f",
        &c.file("dup.yaml", &c.ok(&["get", "deploy", "web", "-o", "yaml"])),
    ]);
    assert!(error.contains("already exists"), "{error}");

    // label and annotate: set, refuse to change without --overwrite, remove.
    c.ok(&["label", "deploy", "web", "tier=front"]);
    let error = c.fails(&["label", "deploy", "web", "tier=back"]);
    assert!(error.contains("--overwrite"), "{error}");
    c.ok(&["label", "deploy", "web", "tier=back", "--overwrite"]);
    c.ok(&["annotate", "deploy/web", "owner=jane"]);
    let labelled = c.json(&["get", "deploy", "web"]);
    assert_eq!(labelled["metadata"]["labels"]["tier"], "back");
    assert_eq!(labelled["metadata"]["annotations"]["owner"], "jane");
    c.ok(&["label", "deploy", "web", "tier-"]);
    let unlabelled = c.json(&["get", "deploy", "web"]);
    assert!(unlabelled["metadata"]["labels"].get("tier").is_none());

    // describe shows the Deployment's sections and its Events (recorded by the gateway).
    eventually(
        "describe to show the Created event",
        Duration::from_secs(20),
        || {
            let text = c.ok(&["describe", "deployment", "web"]);
            (text.contains("Events:") && text.contains("Created")).then_some(())
        },
    );
    let text = c.ok(&["describe", "deploy", "web"]);
    assert!(text.contains("Replicas:"), "{text}");
    assert!(text.contains("nginx:2"), "{text}");

    // expose makes a Service selecting the deployment's pods.
    c.ok(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let service = c.json(&["get", "svc", "web"]);
    assert_eq!(service["spec"]["selector"]["app"], "web");
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 8080);
    // ... with a ClusterIP from the service range (10.96.0.0/12), and a node port when
    // asked for one; `get svc` prints them as kubectl does.
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_owned();
    assert!(
        cluster_ip.starts_with("10.9") || cluster_ip.starts_with("10.1"),
        "{service}"
    );
    c.ok(&[
        "expose",
        "deploy/web",
        "--port",
        "80",
        "--type",
        "NodePort",
        "--name",
        "web-public",
    ]);
    let public = c.json(&["get", "svc", "web-public"]);
    let node_port = public["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&node_port), "{public}");
    assert_ne!(public["spec"]["clusterIP"].as_str().unwrap(), cluster_ip);
    let table = c.ok(&["get", "svc"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.split_whitespace().eq([
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("web-public "))
        .unwrap();
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], "NodePort", "{table}");
    assert_eq!(fields[3], "<none>", "{table}");
    assert_eq!(fields[4], format!("80:{node_port}/TCP"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("kubernetes "))
        .unwrap();
    assert!(
        row.contains("10.96.0.1") && row.contains("443/TCP"),
        "{table}"
    );

    // rollout undo puts back the template of the previous revision, without the hash label:
    // the deployment controller has made a ReplicaSet per revision (nginx:1, then nginx:2).
    wait_for_revision(&c, "web", 2);
    let history = c.ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.contains("REVISION") && history.contains('2'),
        "{history}"
    );
    let out = c.ok(&["rollout", "undo", "deployment/web"]);
    assert!(out.contains("rolled back to revision 1"), "{out}");
    let undone = c.json(&["get", "deploy", "web"]);
    assert_eq!(image_of(&undone), "nginx:1");
    assert!(undone["spec"]["template"]["metadata"]["labels"]
        .get("pod-template-hash")
        .is_none());
    let error = c.fails(&["rollout", "undo", "deploy/web", "--to-revision", "9"]);
    assert!(error.contains("revisions:"), "{error}");
    c.ok(&["rollout", "pause", "deploy/web"]);
    assert_eq!(c.json(&["get", "deploy", "web"])["spec"]["paused"], true);
    c.ok(&["rollout", "resume", "deploy/web"]);
    c.ok(&["rollout", "restart", "deploy/web"]);
    let restarted = c.json(&["get", "deploy", "web"]);
    assert!(restarted["spec"]["template"]["metadata"]["annotations"]
        .get("kubectl.kubernetes.io/restartedAt")
        .is_some());

    // edit writes back what the editor changed; a change made meanwhile is a Conflict.
    // The deployment controller writes status too, so a user may have to edit again.
    let mut attempts = 0;
    let run = loop {
        attempts += 1;
        let run = c.run_env(
            &["edit", "deploy", "web"],
            &[("EDITOR", "sed -i s/nginx:1/nginx:3/")],
        );
        if run.code == 0 || attempts == 5 || !run.stderr.contains("run `rafter edit` again") {
            break run;
        }
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(image_of(&c.json(&["get", "deploy", "web"])), "nginx:3");
    let concurrent = format!(
        "{} --kubeconfig {} label deploy web race=1 >/dev/null; sed -i s/nginx:3/nginx:4/",
        env!("CARGO_BIN_EXE_rafter"),
        c.config
    );
    let run = c.run_env(&["edit", "deploy", "web"], &[("EDITOR", &concurrent)]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stderr.contains("run `rafter edit` again"),
        "{}",
        run.stderr
    );
    assert_eq!(image_of(&c.json(&["get", "deploy", "web"])), "nginx:3");
}

#[test]
fn node_config_and_certificate_verbs_work_on_the_objects_they_name() {
    let c = Cluster::start("node-verbs");

    // taint, cordon and uncordon a Node made with apply -f.
    c.ok(&["apply", "-f", &c.file("node.yaml", NODE)]);
    c.ok(&["taint", "nodes", "w1", "dedicated=gpu:NoSchedule"]);
    let node = c.json(&["get", "node", "w1"]);
    assert_eq!(node["spec"]["taints"][0]["key"], "dedicated");
    assert_eq!(node["spec"]["taints"][0]["effect"], "NoSchedule");
    let error = c.fails(&["taint", "nodes", "w1", "dedicated=cpu:NoSchedule"]);
    assert!(error.contains("--overwrite"), "{error}");
    c.ok(&["cordon", "w1"]);
    assert_eq!(
        c.json(&["get", "node", "w1"])["spec"]["unschedulable"],
        true
    );
    let text = c.ok(&["describe", "node", "w1"]);
    assert!(text.contains("dedicated=gpu:NoSchedule"), "{text}");
    assert!(text.contains("Unschedulable:"), "{text}");
    c.ok(&["uncordon", "node/w1"]);
    let node = c.json(&["get", "node", "w1"]);
    assert_ne!(node["spec"]["unschedulable"], true);
    c.ok(&["taint", "nodes", "w1", "dedicated-"]);
    let node = c.json(&["get", "node", "w1"]);
    assert!(
        node["spec"]["taints"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "{node}"
    );
    let error = c.fails(&["taint", "nodes", "w1", "dedicated-"]);
    assert!(error.contains("not found"), "{error}");

    // drain refuses a pod no controller owns, and evicts it with --force.
    c.ok(&[
        "apply",
        "-f",
        &c.file(
            "bare.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec:\n  nodeName: w1\n  containers: [{name: c, image: busybox}]\n",
        ),
    ]);
    let error = c.fails(&["drain", "w1"]);
    assert!(
        error.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/bare"
        ),
        "{error}"
    );
    let out = c.ok(&[
        "drain",
        "w1",
        "--force",
        "--grace-period",
        "0",
        "--timeout",
        "60s",
    ]);
    assert!(out.contains("node/w1 drained"), "{out}");
    c.ok(&["uncordon", "w1"]);

    // create configmap and secret from literals and files.
    let file = c.file("app.toml", "mode = 'fast'\n");
    c.ok(&[
        "create",
        "configmap",
        "app",
        "--from-literal",
        "level=3",
        "--from-file",
        &file,
    ]);
    let cm = c.json(&["get", "cm", "app"]);
    assert_eq!(cm["data"]["level"], "3");
    assert_eq!(cm["data"]["app.toml"], "mode = 'fast'\n");
    c.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        "--from-literal",
        "password=s3cret",
        "--from-file",
        &format!("cfg={file}"),
    ]);
    let secret = c.json(&["get", "secret", "db"]);
    let engine = base64::engine::general_purpose::STANDARD;
    assert_eq!(secret["data"]["password"], engine.encode("s3cret"));
    assert_eq!(secret["data"]["cfg"], engine.encode("mode = 'fast'\n"));
    c.ok(&["create", "namespace", "staging"]);
    let error = c.fails(&["create", "namespace", "staging"]);
    assert!(error.contains("already exists"), "{error}");

    // certificate approve on a request filed with apply -f.
    let (pem, _key) = rafter_client::new_request("jane", &[]).unwrap();
    let csr = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: jane}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [digital signature, key encipherment, client auth]\n",
        engine.encode(pem)
    );
    c.ok(&["apply", "-f", &c.file("csr.yaml", &csr)]);
    let out = c.ok(&["certificate", "approve", "jane"]);
    assert!(out.contains("approved"), "{out}");
    let approved = c.json(&["get", "csr", "jane"]);
    let conditions = approved["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c["type"] == "Approved"),
        "{approved}"
    );
    let error = c.fails(&["certificate", "approve", "nobody"]);
    assert!(error.contains("nobody"), "{error}");

    // auth can-i: the admin may create deployments; logs of a missing pod: not found.
    let run = c.run(&["auth", "can-i", "create", "deployments"]);
    assert_eq!((run.code, run.stdout.trim()), (0, "yes"), "{}", run.stderr);
    let error = c.fails(&["logs", "nobody"]);
    assert!(error.contains("not found"), "{error}");
}

#[test]
fn create_secret_docker_registry_makes_a_dockerconfigjson_login_as_kubectl_does() {
    let run = crate::support::rafter(
        &[
            "create",
            "secret",
            "docker-registry",
            "regcred",
            "--docker-server",
            "reg.example:5000",
            "--docker-username",
            "ci",
            "--docker-password",
            "s3:cret",
            "--docker-email",
            "ci@example.com",
            "--dry-run=client",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let secret: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(secret["metadata"]["name"], "regcred");
    let engine = base64::engine::general_purpose::STANDARD;
    let encoded = secret["data"][".dockerconfigjson"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&engine.decode(encoded).unwrap()).unwrap();
    let login = &config["auths"]["reg.example:5000"];
    assert_eq!(login["username"], "ci");
    assert_eq!(login["password"], "s3:cret");
    assert_eq!(login["email"], "ci@example.com");
    assert_eq!(login["auth"], engine.encode("ci:s3:cret"));

    // Docker Hub when no server is given; the password is required.
    let run = crate::support::rafter(
        &[
            "create",
            "secret",
            "docker-registry",
            "hub",
            "--docker-username",
            "me",
            "--docker-password",
            "pw",
            "--dry-run=client",
            "-o",
            "json",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let secret: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let encoded = secret["data"][".dockerconfigjson"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&engine.decode(encoded).unwrap()).unwrap();
    assert_eq!(
        config["auths"]["https://index.docker.io/v1/"]["username"],
        "me"
    );
    let run = crate::support::rafter(
        &[
            "create",
            "secret",
            "docker-registry",
            "x",
            "--docker-username",
            "me",
        ],
        None,
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--docker-password"), "{}", run.stderr);
}

#[test]
fn every_verb_has_help_with_examples() {
    let verbs: &[&[&str]] = &[
        &["create"],
        &["create", "namespace"],
        &["create", "configmap"],
        &["create", "secret", "generic"],
        &["create", "secret", "docker-registry"],
        &["create", "deployment"],
        &["create", "role"],
        &["create", "clusterrole"],
        &["create", "rolebinding"],
        &["create", "clusterrolebinding"],
        &["describe"],
        &["edit"],
        &["label"],
        &["annotate"],
        &["scale"],
        &["set", "image"],
        &["rollout", "status"],
        &["rollout", "history"],
        &["rollout", "undo"],
        &["rollout", "pause"],
        &["rollout", "resume"],
        &["rollout", "restart"],
        &["expose"],
        &["taint"],
        &["cordon"],
        &["uncordon"],
        &["drain"],
        &["certificate", "approve"],
        &["certificate", "deny"],
        &["logs"],
        &["top", "node"],
        &["top", "pod"],
        &["auth", "can-i"],
        &["completion"],
        &["version"],
        &["get"],
        &["apply"],
        &["delete"],
    ];
    for verb in verbs {
        let mut args = verb.to_vec();
        args.push("--help");
        let run = rafter_with_env(&args, &[]);
        assert_eq!(run.code, 0, "{verb:?}: {}", run.stderr);
        assert!(
            run.stdout.contains("Examples:"),
            "`rafter {}` has no Examples:\n{}",
            verb.join(" "),
            run.stdout
        );
    }
}

#[test]
fn completion_scripts_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let run = rafter_with_env(&["completion", shell], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(run.stdout.contains("rafter"), "{shell}");
        assert!(run.stdout.contains("rollout"), "{shell}");
    }
}

#[test]
fn up_refuses_a_bad_service_range_naming_the_flag_before_creating_anything() {
    let dir = std::env::temp_dir().join(format!("rafter-up-bad-range-{}", std::process::id()));
    let dir_text = dir.to_str().unwrap();
    for (flag, value) in [
        ("--service-cluster-ip-range", "10.96.0.0/33"),
        ("--service-node-port-range", "32767-30000"),
    ] {
        let run = rafter_with_env(&["up", "--dir", dir_text, flag, value], &[]);
        assert_ne!(run.code, 0, "{flag} {value} was accepted");
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
        assert!(!dir.exists(), "{} was created", dir.display());
    }
}

#[test]
fn version_works_without_a_cluster() {
    let run = rafter_with_env(
        &["version", "--kubeconfig", "/nonexistent/rafter-config"],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Client Version: rafter"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Server: no client config"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bootstrap_token_lets_its_holder_file_certificate_requests_only_until_deleted() {
    let c = Cluster::start("tokens");
    let token = c.ok(&["token", "create", "--ttl", "1h"]).trim().to_owned();
    assert_eq!(token.len(), 23, "a token is <6>.<16>: {token}");
    let id = token.split('.').next().unwrap().to_owned();
    assert!(c.ok(&["token", "list"]).contains(&id));

    // A client config that authenticates with the token instead of the admin certificate.
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&c.config).unwrap()).unwrap();
    config["users"][0]["user"] = serde_yaml::from_str(&format!("{{token: '{token}'}}")).unwrap();
    let path = c.file("token.conf", &serde_yaml::to_string(&config).unwrap());
    let as_holder = |args: &[&str]| rafter_with_env(args, &[("RAFTERCONFIG", path.as_str())]);
    assert_eq!(
        as_holder(&["get", "csr"]).code,
        0,
        "a token holder may read CSRs"
    );
    let refused = as_holder(&["get", "pods"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(&format!(
            r#"User "system:bootstrap:{id}" cannot list resource "pods""#
        )),
        "{}",
        refused.stderr
    );
    // can-i answers the holder about itself (system:node-bootstrapper); it may not act as
    // another user (impersonation).
    let yes = as_holder(&["auth", "can-i", "create", "csr"]);
    assert_eq!((yes.code, yes.stdout.trim()), (0, "yes"), "{}", yes.stderr);
    let no = as_holder(&["auth", "can-i", "list", "pods"]);
    assert_eq!((no.code, no.stdout.trim()), (1, "no"), "{}", no.stderr);
    assert!(no.stderr.contains("cannot list"), "{}", no.stderr);
    let other = as_holder(&["auth", "can-i", "list", "pods", "--as", "jane"]);
    assert_eq!(other.code, 1, "{}", other.stdout);
    assert!(other.stdout.is_empty(), "{}", other.stdout);
    assert!(
        other.stderr.contains(&format!(
            r#"User "system:bootstrap:{id}" cannot impersonate resource "users""#
        )),
        "{}",
        other.stderr
    );

    c.ok(&["token", "delete", &id]);
    let gone = as_holder(&["get", "csr"]);
    assert_ne!(gone.code, 0, "a deleted token still works");
    assert!(!c.ok(&["token", "list"]).contains(&id));
}
