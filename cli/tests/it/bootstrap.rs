//! Node TLS bootstrap on a real three-master cluster: `rafter agent --bootstrap-token`
//! joins with nothing but the token, the masters' CSR controller auto-approves and signs
//! its request, and the agent talks mTLS as system:node:<name> from then on — seen from
//! the outside through the requests the gateway records (`spec.username` is always the
//! authenticated caller) and an agent that keeps working after its token is deleted.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{eventually, Cluster};

/// An agent process, killed when dropped.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The objects `get -o json` printed: a list's items, or the one object.
fn items(output: &Value) -> Vec<Value> {
    match output["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![output.clone()],
    }
}

fn requests_by(cluster: &Cluster, user: &str) -> Vec<Value> {
    items(&cluster.json(&["get", "csr"]))
        .into_iter()
        .filter(|csr| csr["spec"]["username"] == user)
        .collect()
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

#[test]
fn an_agent_with_only_a_bootstrap_token_joins_and_then_works_as_its_node() {
    let c = Cluster::start("tls-bootstrap");
    let token = c.ok(&["token", "create", "--ttl", "1h"]).trim().to_owned();
    let token_id = token.split('.').next().unwrap().to_owned();
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&c.config).unwrap()).unwrap();
    let servers: Vec<String> = config["clusters"][0]["cluster"]["servers"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(servers.len(), 3, "three masters");
    let ca = c.dir.join("m1").join("pki").join("ca.crt");
    let data_dir = c.dir.join("joiner");
    // No client config at all: masters, CA and the token on the command line. The
    // certificate is asked for 600 s and renewed when less than 590 s are left, so the
    // first renewal (made with the certificate itself) comes about 10 s after joining.
    let agent = Command::new(env!("CARGO_BIN_EXE_rafter"))
        .args(["agent", "--name", "joiner", "--runtime", "hollow"])
        .args(["--server", &servers.join(",")])
        .arg("--ca")
        .arg(&ca)
        .args(["--bootstrap-token", &token])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--lease-interval", "1s"])
        .args([
            "--cert-expiration-seconds",
            "600",
            "--cert-renew-before",
            "590s",
        ])
        .env_remove("RAFTERCONFIG")
        .env("HOME", &c.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(c.dir.join("joiner.log")).unwrap())
        .spawn()
        .unwrap();
    let _agent = AgentProcess(agent);
    let log = || std::fs::read_to_string(c.dir.join("joiner.log")).unwrap_or_default();

    // It registers its Node.
    eventually("node joiner Ready", Duration::from_secs(60), || {
        let run = c.run(&["get", "node", "joiner", "-o", "json"]);
        (run.code == 0 && node_ready(&serde_json::from_str(&run.stdout).ok()?)).then_some(())
    });
    // Its first request came from the token, and was approved and signed.
    let first = requests_by(&c, &format!("system:bootstrap:{token_id}"));
    assert_eq!(
        first.len(),
        1,
        "one bootstrap request: {}\n{}",
        c.json(&["get", "csr"]),
        log()
    );
    assert_eq!(
        first[0]["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client-kubelet"
    );
    assert!(first[0]["status"]["certificate"].is_string(), "{first:?}");

    // Its certificate and key are on disk, the key private.
    let pki = data_dir.join("pki");
    let cert = std::fs::read_to_string(pki.join("client.crt")).unwrap();
    let info = rafter_client::cert_info(&cert).unwrap();
    assert_eq!(info.identity.user, "system:node:joiner");
    assert_eq!(info.identity.groups, ["system:nodes"]);
    let mode = std::fs::metadata(pki.join("client.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The token goes away; the agent does not need it any more.
    c.ok(&["token", "delete", &token_id]);
    // Its renewal is filed with the certificate: the gateway saw system:node:joiner.
    let renewal = eventually(
        "a renewal request filed as system:node:joiner",
        Duration::from_secs(60),
        || {
            requests_by(&c, "system:node:joiner")
                .into_iter()
                .find(|csr| {
                    csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                        && csr["status"]["certificate"].is_string()
                })
        },
    );
    assert_eq!(
        renewal["spec"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| *g == "system:nodes")
            .count(),
        1,
        "{renewal}"
    );
    // And it keeps working: its Lease is renewed after the token was deleted.
    let renewed_at = |c: &Cluster| {
        c.json(&["get", "lease", "joiner", "-n", "kube-node-lease"])["spec"]["renewTime"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let before = renewed_at(&c);
    eventually(
        "the lease renewed after the token was deleted",
        Duration::from_secs(30),
        || (renewed_at(&c) != before).then_some(()),
    );
    // The stored certificate is the renewed one.
    let now = std::fs::read_to_string(pki.join("client.crt")).unwrap();
    assert_eq!(
        rafter_client::cert_info(&now).unwrap().identity.user,
        "system:node:joiner"
    );
    assert!(!log().contains("ERROR"), "{}", log());
}

#[test]
fn a_bootstrap_token_files_requests_as_itself_and_sees_only_its_own() {
    let c = Cluster::start("tls-bootstrap-limits");
    let token = c.ok(&["token", "create", "--ttl", "1h"]).trim().to_owned();
    let token_id = token.split('.').next().unwrap().to_owned();
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&c.config).unwrap()).unwrap();
    config["users"][0]["user"] = serde_yaml::from_str(&format!("{{token: '{token}'}}")).unwrap();
    let path = c.file("token.conf", &serde_yaml::to_string(&config).unwrap());
    let as_holder =
        |args: &[&str]| crate::support::rafter_with_env(args, &[("RAFTERCONFIG", path.as_str())]);

    // Pods can be neither read nor written.
    let pod = c.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - {name: c, image: busybox}\n",
    );
    for args in [
        vec!["get", "pods"],
        vec!["get", "pod", "p"],
        vec!["apply", "-f", pod.as_str()],
        vec!["delete", "pod", "p"],
    ] {
        let run = as_holder(&args);
        assert_ne!(run.code, 0, "`rafter {}` succeeded", args.join(" "));
        assert!(
            run.stderr.contains("User \"system:bootstrap:") && run.stderr.contains("cannot"),
            "the refusal names the token's user: {}",
            run.stderr
        );
    }

    // A request filed by the holder names the holder, whatever it claimed.
    let (request, _key) =
        rafter_client::new_request("system:node:claimed", &["system:nodes".to_owned()]).unwrap();
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(request);
    let csr = |name: &str, user: &str| {
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  request: {encoded}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [digital signature, key encipherment, client auth]\n  username: {user}\n"
        )
    };
    let mine = c.file("mine.yaml", &csr("mine", "admin"));
    let run = as_holder(&["apply", "-f", &mine]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let theirs = c.file("theirs.yaml", &csr("theirs", "someone"));
    c.ok(&["apply", "-f", &theirs]);
    let stored = c.json(&["get", "csr", "mine"]);
    assert_eq!(
        stored["spec"]["username"],
        format!("system:bootstrap:{token_id}")
    );
    assert_eq!(
        c.json(&["get", "csr", "theirs"])["spec"]["username"],
        "admin"
    );

    // The holder lists and reads its own request only.
    let listed = as_holder(&["get", "csr", "-o", "name"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("mine"), "{}", listed.stdout);
    assert!(!listed.stdout.contains("theirs"), "{}", listed.stdout);
    assert_eq!(as_holder(&["get", "csr", "mine"]).code, 0);
    let refused = as_holder(&["get", "csr", "theirs"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("it filed"), "{}", refused.stderr);
    // Nor may it approve anything.
    let approve = as_holder(&["certificate", "approve", "mine"]);
    assert_ne!(approve.code, 0, "{}", approve.stdout);
}
