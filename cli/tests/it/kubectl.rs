//! Stock `kubectl` (and the official Python client) against a `rafter up` cluster, through
//! the kubeconfig `rafter up` writes: the Kubernetes REST API every master serves.
//!
//! kubectl is found on PATH (with the versioned `kubectl.1.27` … `kubectl.1.33` beside it
//! when present); a test prints SKIPPED and passes when there is none. The Python test
//! makes its own venv with `pip install kubernetes` and skips, saying why, when it cannot.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rafter_proto::{Kind, WatchEventType};
use serde_json::{json, Value};

use crate::cluster::{eventually, Cluster};
use crate::support::Run;

const LIMIT: Duration = Duration::from_secs(90);

/// The folder of the stock kubectl, or `None` (and a SKIPPED line) when it is missing.
fn kubectl_dir(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    match found.and_then(|k| std::fs::canonicalize(k).ok()) {
        Some(real) => real.parent().map(Path::to_path_buf),
        None => {
            println!("SKIPPED {test}: no kubectl on PATH");
            None
        }
    }
}

/// A cluster and the kubectl binaries to drive it with.
struct Kube {
    cluster: Cluster,
    kubeconfig: String,
    dir: PathBuf,
}

impl Kube {
    fn start(test: &str, flags: &[&str]) -> Option<Kube> {
        let dir = kubectl_dir(test)?;
        let cluster = Cluster::start_with(test, flags);
        let kubeconfig = cluster.dir.join("kubeconfig").display().to_string();
        Some(Kube {
            cluster,
            kubeconfig,
            dir,
        })
    }

    /// Runs `binary` (`kubectl` or a versioned one) with the cluster's kubeconfig.
    fn run_with(&self, binary: &str, args: &[&str]) -> Run {
        let output = Command::new(self.dir.join(binary))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.cluster.dir)
            .stdin(Stdio::null())
            .output()
            .expect("kubectl runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with("kubectl", args)
    }

    /// Runs `kubectl ARGS` with `stdin` fed and then closed.
    fn run_in(&self, args: &[&str], stdin: &str) -> Run {
        self.run_in_with("kubectl", args, stdin)
    }

    /// Runs `binary ARGS` with `stdin` fed and then closed.
    fn run_in_with(&self, binary: &str, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = Command::new(self.dir.join(binary))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.cluster.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes())
            .expect("kubectl takes its stdin");
        let output = child.wait_with_output().expect("kubectl finishes");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `binary ARGS` in the background: the child (stderr piped) and its stdout's
    /// lines as they come.
    fn spawn(&self, binary: &str, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
        let mut child = Command::new(self.dir.join(binary))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.cluster.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        (child, rx)
    }

    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "`kubectl {}` failed:\n{}\n{}",
            args.join(" "),
            run.stdout,
            run.stderr
        );
        run.stdout
    }

    fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_ne!(
            run.code,
            0,
            "`kubectl {}` should fail:\n{}",
            args.join(" "),
            run.stdout
        );
        run.stderr
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl prints JSON")
    }

    fn file(&self, name: &str, text: &str) -> String {
        self.cluster.file(name, text)
    }

    /// The REST endpoints of every master, from `rafter up`'s state file.
    fn rest_servers(&self) -> Vec<String> {
        let state: Value = serde_json::from_str(
            &std::fs::read_to_string(self.cluster.dir.join("cluster.json")).unwrap(),
        )
        .unwrap();
        state["masters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| format!("https://127.0.0.1:{}", m["rest_port"]))
            .collect()
    }
}

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: docker.io/local/busybox:1
        command: [sh, -c, 'echo web says hello; while true; do sleep 1; done']
        resources:
          requests: {cpu: 10m, memory: 16Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
";

#[test]
fn stock_kubectl_reads_version_discovery_and_openapi_from_every_master() {
    let Some(kube) = Kube::start("kubectl-discovery", &["--agents", "0"]) else {
        return;
    };
    let version = kube.ok(&["version", "-o", "json"]);
    let version: Value = serde_json::from_str(&version).unwrap();
    assert_eq!(version["serverVersion"]["major"], "1");
    assert!(version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .starts_with("v1."));

    let resources = kube.ok(&["api-resources"]);
    for line in [
        "pods ",
        "deployments ",
        "certificatesigningrequests ",
        "clusterrolebindings ",
    ] {
        assert!(resources.contains(line), "{line} missing:\n{resources}");
    }
    let pods_line = resources.lines().find(|l| l.starts_with("pods ")).unwrap();
    assert!(
        pods_line.contains(" po ") && pods_line.contains("true") && pods_line.ends_with("Pod"),
        "{pods_line}"
    );

    let api: Value = serde_json::from_str(&kube.ok(&["get", "--raw", "/api"])).unwrap();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"][0], "v1");

    let explain = kube.ok(&["explain", "pod.spec.containers"]);
    assert!(
        explain.contains("KIND:") && explain.contains("Pod") && explain.contains("image"),
        "{explain}"
    );

    // `rafter config view --kubeconfig-format` gives kubectl the same cluster.
    let exported = crate::support::rafter_with_env(
        &["config", "view", "--kubeconfig-format", "--minify", "--raw"],
        &[("RAFTERCONFIG", &kube.cluster.config)],
    );
    assert_eq!(exported.code, 0, "{}", exported.stderr);
    let file = kube.file("exported.kubeconfig", &exported.stdout);
    let names = kube.ok(&["--kubeconfig", &file, "get", "namespaces", "-o", "name"]);
    assert!(names.contains("namespace/default"), "{names}");

    // Every master serves the same API: each answers with the cluster's namespaces, and
    // reports its watch cache (loaded, holding the namespaces, the lists just read from it),
    // its store's memory (the memtables hold the writes just made) and its own.
    for server in kube.rest_servers() {
        let names = kube.ok(&["--server", &server, "get", "namespaces", "-o", "name"]);
        assert!(names.contains("namespace/kube-system"), "{server}: {names}");
        let metrics = kube.ok(&["--server", &server, "get", "--raw", "/metrics"]);
        let figure = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{server}: no {name} in\n{metrics}"))
        };
        assert_eq!(figure("rafter_watch_cache_ready"), 1, "{server}");
        assert!(figure("rafter_watch_cache_objects") > 0, "{server}");
        assert!(
            figure("rafter_watch_cache_reads_from_cache_total") > 0,
            "{server}"
        );
        assert!(figure("rafter_watch_cache_revision") > 0, "{server}");
        assert!(figure("rafter_store_memtable_bytes") > 0, "{server}");
        figure("rafter_store_block_cache_bytes");
        let resident = figure("process_resident_memory_bytes");
        assert!(
            (1 << 20..=figure("rafter_process_peak_resident_memory_bytes")).contains(&resident),
            "{server}: resident {resident}"
        );
    }
    let refused = kube.fails(&["get", "--raw", "/metrics", "--as", "bob"]);
    assert!(
        refused.contains("Forbidden") && refused.contains(r#""bob" cannot get path "/metrics""#),
        "{refused}"
    );

    // The oldest and the newest versioned kubectl beside the default one.
    for binary in ["kubectl.1.27", "kubectl.1.33"] {
        if !kube.dir.join(binary).is_file() {
            println!("{binary} is not installed; only the default kubectl was driven");
            continue;
        }
        let run = kube.run_with(binary, &["get", "namespaces"]);
        assert_eq!(run.code, 0, "{binary}: {}", run.stderr);
        assert!(run.stdout.starts_with("NAME "), "{binary}: {}", run.stdout);
        let file = kube.file(
            &format!("{binary}.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: versioned}\ndata: {a: b}\n",
        );
        let run = kube.run_with(binary, &["apply", "-f", &file]);
        assert_eq!(run.code, 0, "{binary} apply: {}", run.stderr);
        let run = kube.run_with(binary, &["delete", "configmap", "versioned"]);
        assert_eq!(run.code, 0, "{binary} delete: {}", run.stderr);
    }
}

#[test]
fn stock_kubectl_applies_lists_watches_changes_logs_and_deletes() {
    let Some(kube) = Kube::start("kubectl-verbs", &["--agents", "1", "--runtime", "process"])
    else {
        return;
    };
    let app = kube.file("app.yaml", APP);
    let applied = kube.ok(&["apply", "-f", &app]);
    assert!(
        applied.contains("deployment.apps/web created")
            && applied.contains("service/web created")
            && applied.contains("configmap/settings created"),
        "{applied}"
    );
    // Applying again is a no-op, through the last-applied annotation and a patch.
    let again = kube.ok(&["apply", "-f", &app]);
    assert!(again.contains("deployment.apps/web unchanged"), "{again}");

    let pod = eventually("a Running web pod", LIMIT, || {
        let pods = kube.json(&["get", "pods", "-l", "app=web"]);
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["status"]["phase"] == "Running")
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
    });

    // Columns as `rafter get` prints them, the wide ones with -o wide.
    let table = kube.ok(&["get", "pods"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let wide = kube.ok(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("NODE") && wide.contains("node-1"),
        "{wide}"
    );
    let services = kube.ok(&["get", "svc", "web"]);
    assert!(
        services.contains("ClusterIP") && services.contains("80/TCP"),
        "{services}"
    );
    let all = kube.ok(&["get", "deploy", "-A"]);
    assert!(all.starts_with("NAMESPACE "), "{all}");
    let yaml = kube.ok(&["get", "deployment", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("resourceVersion:"),
        "{yaml}"
    );
    let everything = kube.ok(&["get", "all"]);
    for kind in [
        "pod/",
        "service/web",
        "deployment.apps/web",
        "replicaset.apps/web-",
    ] {
        assert!(
            everything.contains(kind),
            "get all lists {kind}:\n{everything}"
        );
    }
    let names = kube.ok(&["get", "deploy,svc", "-o", "name"]);
    assert!(
        names.contains("deployment.apps/web") && names.contains("service/web"),
        "{names}"
    );
    let list = kube.json(&["get", "configmaps"]);
    assert_eq!(list["kind"], "List");
    let describe = kube.ok(&["describe", "pod", &pod]);
    assert!(
        describe.contains("Node:") && describe.contains("node-1"),
        "{describe}"
    );

    // get -w sees a change made while it watches.
    let mut watcher = Command::new(kube.dir.join("kubectl"))
        .args(["get", "configmaps", "--watch", "--output-watch-events"])
        .env("KUBECONFIG", &kube.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = watcher.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The watch has started once the current objects are listed.
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("settings")) {
        let left = deadline.saturating_duration_since(Instant::now());
        seen.push(
            rx.recv_timeout(left)
                .expect("kubectl get -w lists settings"),
        );
    }
    kube.ok(&["create", "configmap", "watched", "--from-literal=a=b"]);
    let event = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("kubectl get -w sees the new configmap");
        if line.contains("watched") {
            break line;
        }
    };
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(event.starts_with("ADDED"), "{event}");

    // scale, label, annotate, cordon.
    assert!(kube
        .ok(&["scale", "deployment", "web", "--replicas", "2"])
        .contains("scaled"));
    let replicas = kube.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "2");
    kube.ok(&["label", "deployment", "web", "tier=front"]);
    kube.ok(&["annotate", "deployment", "web", "owner=team-a"]);
    let deployment = kube.json(&["get", "deployment", "web"]);
    assert_eq!(deployment["metadata"]["labels"]["tier"], "front");
    assert_eq!(deployment["metadata"]["annotations"]["owner"], "team-a");
    kube.ok(&["cordon", "node-1"]);
    assert!(kube.ok(&["get", "nodes"]).contains("SchedulingDisabled"));
    kube.ok(&["uncordon", "node-1"]);
    let node = kube.json(&["get", "node", "node-1"]);
    assert!(node["spec"]["unschedulable"].is_null(), "{node}");

    // logs, through the master and the agent.
    let logs = eventually("the pod's log line", LIMIT, || {
        let run = kube.run(&["logs", &pod]);
        (run.code == 0 && run.stdout.contains("web says hello")).then_some(run.stdout)
    });
    assert!(logs.contains("web says hello"));
    let tail = kube.ok(&["logs", &pod, "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // delete --wait returns once the object is gone.
    let deleted = kube.ok(&["delete", "configmap", "watched", "--wait"]);
    assert!(
        deleted.contains("configmap \"watched\" deleted"),
        "{deleted}"
    );
    let gone = kube.fails(&["get", "configmap", "watched"]);
    assert!(gone.contains("NotFound"), "{gone}");
    kube.ok(&["delete", "-f", &app, "--wait"]);
}

/// `kubectl apply --server-side`: fields are owned by their manager, a field another
/// manager set differently is a conflict naming both (kubectl prints its advice),
/// `--force-conflicts` takes it, and what a manager stops applying is removed.
#[test]
fn stock_kubectl_server_side_apply_owns_fields_and_names_conflicts() {
    let Some(kube) = Kube::start("kubectl-ssa", &["--agents", "0"]) else {
        return;
    };
    let config = |replicas: u32, extra_label: bool, sidecar: bool| {
        let mut text = String::from(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\n  labels:\n    app: ssa\n",
        );
        if extra_label {
            text.push_str("    tier: front\n");
        }
        text.push_str(&format!(
            "spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: ssa}}}}\n  template:\n    metadata: {{labels: {{app: ssa}}}}\n    spec:\n      containers:\n      - {{name: app, image: docker.io/local/busybox:1}}\n"
        ));
        if sidecar {
            text.push_str("      - {name: side, image: docker.io/local/busybox:1}\n");
        }
        text
    };
    let first = kube.file("ssa-1.yaml", &config(2, true, true));
    let created = kube.ok(&["apply", "--server-side", "-f", &first]);
    assert!(
        created.contains("deployment.apps/ssa serverside-applied"),
        "{created}"
    );
    let deployment = kube.json(&["get", "deploy", "ssa", "--show-managed-fields"]);
    let entries = deployment["metadata"]["managedFields"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["manager"], "kubectl");
    assert_eq!(entries[0]["operation"], "Apply");
    assert_eq!(entries[0]["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    // `get -o yaml` leaves them out unless asked, as kubectl does with any server.
    let plain = kube.ok(&["get", "deploy", "ssa", "-o", "yaml"]);
    assert!(!plain.contains("managedFields"), "{plain}");

    // Another manager changes replicas (kubectl scale records itself as an Update).
    kube.ok(&["scale", "deploy", "ssa", "--replicas", "5"]);
    let scaled = kube.json(&["get", "deploy", "ssa", "--show-managed-fields"]);
    let scaler = scaled["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operation"] == "Update")
        .cloned()
        .unwrap_or_else(|| panic!("an Update entry: {scaled}"));
    assert_eq!(
        scaler["fieldsV1"]["f:spec"]["f:replicas"],
        json!({}),
        "{scaler}"
    );
    let scaler_name = scaler["manager"].as_str().unwrap().to_owned();

    // Applying replicas 2 again conflicts with the scaler, named with the field.
    let refused = kube.fails(&["apply", "--server-side", "-f", &first]);
    assert!(
        refused.contains("Apply failed with 1 conflict")
            && refused.contains(&format!("conflict with \"{scaler_name}\""))
            && refused.contains(".spec.replicas"),
        "{refused}"
    );
    assert!(
        refused.contains("--force-conflicts"),
        "kubectl's advice: {refused}"
    );
    let replicas = kube.ok(&["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "5", "a refused apply changes nothing");

    // A different manager applying only what it owns: no conflict, shared with nobody.
    let labels = kube.file(
        "ssa-labels.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: ssa\n  labels:\n    team: a\n",
    );
    kube.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "team-tool",
        "-f",
        &labels,
    ]);

    // Forced: kubectl takes replicas back; then it stops applying the tier label and the
    // sidecar, which go, while the label team-tool owns stays.
    kube.ok(&["apply", "--server-side", "--force-conflicts", "-f", &first]);
    let forced = kube.json(&["get", "deploy", "ssa", "--show-managed-fields"]);
    assert_eq!(forced["spec"]["replicas"], 2);
    let second = kube.file("ssa-2.yaml", &config(2, false, false));
    kube.ok(&["apply", "--server-side", "-f", &second]);
    let pruned = kube.json(&["get", "deploy", "ssa", "--show-managed-fields"]);
    let labels = &pruned["metadata"]["labels"];
    assert_eq!(labels, &json!({"app": "ssa", "team": "a"}), "{pruned}");
    let containers = pruned["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let entries: Vec<(&str, &str)> = pruned["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
            )
        })
        .collect();
    // The scaler lost replicas to the forced apply and owns nothing else, so its entry
    // is gone.
    assert_eq!(
        entries,
        [("kubectl", "Apply"), ("team-tool", "Apply")],
        "{pruned}"
    );

    // Applying the same configuration again writes nothing.
    let before = kube.ok(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    kube.ok(&["apply", "--server-side", "-f", &second]);
    let after = kube.ok(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(before, after);

    // A client-side-applied object then applied server-side: the creator's fields
    // conflict when changed, as in Kubernetes.
    let cm = kube.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {mode: fast}\n",
    );
    kube.ok(&["create", "-f", &cm]);
    let changed = kube.file(
        "cm-2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {mode: slow}\n",
    );
    let conflict = kube.fails(&["apply", "--server-side", "-f", &changed]);
    assert!(
        conflict.contains("conflict with \"kubectl-create\"") && conflict.contains(".data.mode"),
        "{conflict}"
    );
}

const ROLL: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: roll}
spec:
  replicas: 2
  selector: {matchLabels: {app: roll}}
  template:
    metadata: {labels: {app: roll}}
    spec:
      containers:
      - name: app
        image: docker.io/local/busybox:1
        command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done']
";

/// The pods of `app=roll` that run, with their node and image, once there are `count`
/// of them and no other.
fn roll_pods(kube: &Kube, count: usize) -> Option<Vec<(String, String, String)>> {
    let pods = kube.json(&["get", "pods", "-l", "app=roll"]);
    let items = pods["items"].as_array()?;
    let running: Vec<(String, String, String)> = items
        .iter()
        .filter(|p| {
            p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_owned(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    (running.len() == count && items.len() == count).then_some(running)
}

/// `rollout status/history/undo`, `set image`, `taint`, `drain` and `logs -f`, driven with
/// the stock kubectl against two agents.
#[test]
fn stock_kubectl_rolls_out_undoes_taints_drains_and_follows_logs() {
    let Some(kube) = Kube::start(
        "kubectl-rollout",
        &["--agents", "2", "--runtime", "process"],
    ) else {
        return;
    };
    let file = kube.file("roll.yaml", ROLL);
    kube.ok(&["apply", "-f", &file]);
    let status = kube.ok(&["rollout", "status", "deployment/roll", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");

    // set image, then rollout status waits for the new pods.
    let set = kube.ok(&[
        "set",
        "image",
        "deployment/roll",
        "app=docker.io/local/pause:1",
    ]);
    assert!(set.contains("image updated"), "{set}");
    let status = kube.ok(&["rollout", "status", "deployment/roll", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    eventually("both pods on the new image", LIMIT, || {
        roll_pods(&kube, 2)?
            .iter()
            .all(|(_, _, image)| image == "docker.io/local/pause:1")
            .then_some(())
    });
    let history = kube.ok(&["rollout", "history", "deployment/roll"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let undo = kube.ok(&["rollout", "undo", "deployment/roll"]);
    assert!(undo.contains("rolled back"), "{undo}");
    kube.ok(&["rollout", "status", "deployment/roll", "--timeout=90s"]);
    let pods = eventually("both pods back on busybox", LIMIT, || {
        let pods = roll_pods(&kube, 2)?;
        pods.iter()
            .all(|(_, _, image)| image == "docker.io/local/busybox:1")
            .then_some(pods)
    });

    // logs -f follows: a line written after kubectl started arrives.
    let mut follower = Command::new(kube.dir.join("kubectl"))
        .args(["logs", "-f", &pods[0].0])
        .env("KUBECONFIG", &kube.kubeconfig)
        .env("HOME", &kube.cluster.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + LIMIT;
    let first = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("kubectl logs -f prints the log");
    let tick = |line: &str| -> u64 {
        line.strip_prefix("tick ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("not a tick line: {line:?}"))
    };
    // The lines already written come at once; wait for one later than the last of them.
    let mut last = tick(&first);
    let mut newer = 0;
    while newer < 2 {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("kubectl logs -f keeps printing");
        let n = tick(&line);
        assert_eq!(n, last + 1, "lines in order, none lost: {line}");
        last = n;
        newer += 1;
    }
    let _ = follower.kill();
    let _ = follower.wait();

    // taint, then drain: the pods leave node-1 for the node that is not tainted away.
    let tainted = kube.ok(&["taint", "nodes", "node-2", "dedicated=ops:NoSchedule"]);
    assert!(tainted.contains("node/node-2 tainted"), "{tainted}");
    let node = kube.json(&["get", "node", "node-2"]);
    assert_eq!(node["spec"]["taints"][0]["key"], "dedicated", "{node}");
    kube.ok(&["taint", "nodes", "node-2", "dedicated=ops:NoSchedule-"]);
    let node = kube.json(&["get", "node", "node-2"]);
    assert!(
        node["spec"]["taints"]
            .as_array()
            .is_none_or(|t| t.is_empty()),
        "{node}"
    );
    let drained = kube.ok(&[
        "drain",
        "node-1",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=90s",
    ]);
    assert!(drained.contains("node/node-1 drained"), "{drained}");
    let moved = eventually("both pods on node-2", LIMIT, || {
        let pods = roll_pods(&kube, 2)?;
        pods.iter()
            .all(|(_, node, _)| node == "node-2")
            .then_some(pods)
    });
    assert_eq!(moved.len(), 2);
    assert!(kube.ok(&["get", "nodes"]).contains("SchedulingDisabled"));
    kube.ok(&["uncordon", "node-1"]);
}

/// `kubectl top` reads `metrics.k8s.io` (found through discovery), served from the
/// agents' figures as `rafter top` is.
#[test]
fn stock_kubectl_exec_streams_output_stdin_and_exit_codes_and_refuses_without_pods_exec() {
    let Some(kube) = Kube::start("kubectl-exec", &["--agents", "1", "--runtime", "process"]) else {
        return;
    };
    kubectl_exec_checks(&kube, &["cat"]);
}

#[test]
fn stock_kubectl_exec_runs_in_containerd_containers() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let flags = [
        "--agents",
        "1",
        "--runtime",
        "containerd",
        "--containerd-socket",
        &socket,
    ];
    let Some(kube) = Kube::start("kubectl-exec-containerd", &flags) else {
        return;
    };
    // containerd 1.6 speaks only v4.channel.k8s.io, which cannot close stdin: the
    // command reading stdin stops by itself.
    kubectl_exec_checks(&kube, &["head", "-n", "1"]);
}

/// `kubectl exec` on a cluster with one agent; `reader` echoes its stdin.
fn kubectl_exec_checks(kube: &Kube, reader: &[&str]) {
    let shell = kube.file(
        "shell.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'exec sleep 3600']
",
    );
    kube.ok(&["apply", "-f", &shell]);
    eventually("pod shell Running", LIMIT, || {
        (kube.json(&["get", "pod", "shell"])["status"]["phase"] == "Running").then_some(())
    });

    // Both streams, and kubectl exits with the command's code.
    let run = kube.run(&[
        "exec",
        "shell",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.stdout, "out\n");
    assert!(run.stderr.starts_with("err\n"), "{}", run.stderr);
    assert_eq!(
        kube.ok(&["exec", "shell", "-c", "app", "--", "echo", "hi"]),
        "hi\n"
    );

    // Stdin, closed at its end (v5.channel.k8s.io's close of stream 0).
    let mut args = vec!["exec", "-i", "shell", "--"];
    args.extend_from_slice(reader);
    let echoed = kube.run_in(&args, "hello\n");
    assert_eq!(echoed.code, 0, "{}", echoed.stderr);
    assert_eq!(echoed.stdout, "hello\n");

    // A user without pods/exec hears kubectl's usual Forbidden, naming them.
    let refused = kube.fails(&["exec", "shell", "--as", "bob", "--", "true"]);
    assert!(
        refused.contains("Forbidden") && refused.contains("\"bob\""),
        "{refused}"
    );

    // -it from a pseudo-terminal (util-linux `script` gives kubectl one): the command
    // runs on a terminal.
    if Path::new("/usr/bin/script").is_file() {
        let kubectl = kube.dir.join("kubectl").display().to_string();
        let line = format!("{kubectl} exec -it shell -- sh -c 'test -t 0 && echo on-a-tty'");
        let output = Command::new("/usr/bin/script")
            .args(["-qec", &line, "/dev/null"])
            .env("KUBECONFIG", &kube.kubeconfig)
            .env("HOME", &kube.cluster.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("on-a-tty"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    } else {
        println!("no /usr/bin/script: exec -it not driven");
    }

    // The newest versioned kubectl speaks WebSocket; kubectl ≤ 1.29 speaks only SPDY/3.1
    // (channel.k8s.io v4 streams): output, stdin and its close, the exit code, Forbidden.
    for binary in ["kubectl.1.33", "kubectl.1.29", "kubectl.1.27"] {
        if !kube.dir.join(binary).is_file() {
            println!("{binary} is not installed; it was not driven");
            continue;
        }
        let run = kube.run_with(binary, &["exec", "shell", "--", "echo", "hi"]);
        assert_eq!(
            (run.code, run.stdout.as_str()),
            (0, "hi\n"),
            "{binary}: {}",
            run.stderr
        );
        let run = kube.run_with(
            binary,
            &[
                "exec",
                "shell",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 3",
            ],
        );
        assert_eq!(run.code, 3, "{binary}: {}", run.stderr);
        assert_eq!(run.stdout, "out\n", "{binary}");
        assert!(run.stderr.starts_with("err\n"), "{binary}: {}", run.stderr);
        let mut args = vec!["exec", "-i", "shell", "--"];
        args.extend_from_slice(reader);
        let echoed = kube.run_in_with(binary, &args, "hello\n");
        assert_eq!(
            (echoed.code, echoed.stdout.as_str()),
            (0, "hello\n"),
            "{binary}: {}",
            echoed.stderr
        );
        // A terminal (and the resize stream that comes with it over SPDY).
        if Path::new("/usr/bin/script").is_file() {
            let kubectl = kube.dir.join(binary).display().to_string();
            let line = format!("{kubectl} exec -it shell -- sh -c 'test -t 0 && echo on-a-tty'");
            let output = Command::new("/usr/bin/script")
                .args(["-qec", &line, "/dev/null"])
                .env("KUBECONFIG", &kube.kubeconfig)
                .env("HOME", &kube.cluster.dir)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("on-a-tty"),
                "{binary}: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // More than a flow-control window each way (64 KiB): nothing stalls.
        let big = kube.run_with(
            binary,
            &[
                "exec",
                "shell",
                "--",
                "sh",
                "-c",
                "head -c 300000 /dev/zero | tr '\\0' a",
            ],
        );
        assert_eq!(big.code, 0, "{binary}: {}", big.stderr);
        assert_eq!(big.stdout.len(), 300_000, "{binary}");
        assert!(big.stdout.bytes().all(|b| b == b'a'), "{binary}");
        let upload = "b".repeat(200_000);
        let counted = kube.run_in_with(
            binary,
            &[
                "exec",
                "-i",
                "shell",
                "--",
                "sh",
                "-c",
                "head -c 200000 | wc -c",
            ],
            &upload,
        );
        assert_eq!(
            (counted.code, counted.stdout.trim()),
            (0, "200000"),
            "{binary}: {}",
            counted.stderr
        );
        let refused = kube.run_with(binary, &["exec", "shell", "--as", "bob", "--", "true"]);
        assert_ne!(refused.code, 0, "{binary}: {}", refused.stdout);
        assert!(
            refused.stderr.contains("Forbidden") || refused.stderr.contains("forbidden"),
            "{binary}: {}",
            refused.stderr
        );
    }
}

#[test]
fn stock_kubectl_top_shows_nodes_and_pods_from_the_metrics_api() {
    let Some(kube) = Kube::start("kubectl-top", &["--agents", "1", "--runtime", "process"]) else {
        return;
    };
    let burner = kube.file(
        "burner.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: burner, labels: {app: burn}}\nspec:\n  containers:\n  - {name: app, image: docker.io/local/busybox:1, command: [sh, -c, 'while :; do :; done']}\n",
    );
    kube.ok(&["apply", "-f", &burner]);
    let pods = eventually("kubectl top pod to show the burner busy", LIMIT, || {
        let run = kube.run(&["top", "pod", "-l", "app=burn"]);
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with("burner "))?
            .to_owned();
        let cells: Vec<&str> = line.split_whitespace().collect();
        let millis: u64 = cells.get(1)?.trim_end_matches('m').parse().ok()?;
        (run.code == 0 && millis >= 50).then_some(run.stdout)
    });
    let header: Vec<&str> = pods.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CPU(cores)", "MEMORY(bytes)"], "{pods}");
    let nobody = kube.run(&["top", "pod", "-l", "app=nobody"]);
    assert!(
        !nobody.stdout.contains("burner"),
        "a selector that matches nothing shows nothing: {}",
        nobody.stdout
    );

    let nodes = kube.ok(&["top", "node"]);
    let header: Vec<&str> = nodes.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header[..3],
        ["NAME", "CPU(cores)", "CPU(%)"],
        "kubectl reads capacity from the Node too: {nodes}"
    );
    let row: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(row[1].ends_with('m') && row[2].ends_with('%'), "{nodes}");

    let missing = kube.fails(&["top", "pod", "nosuch"]);
    assert!(missing.contains("nosuch"), "{missing}");
}

/// kubectl ≥ 1.32 sends these creates as protobuf bodies from its typed clients.
#[test]
fn stock_kubectl_creates_jobs_cron_jobs_services_and_quotas() {
    let Some(kube) = Kube::start("kubectl-create", &["--agents", "0"]) else {
        return;
    };
    let created = kube.ok(&[
        "create",
        "job",
        "once",
        "--image=docker.io/local/busybox:1",
        "--",
        "sh",
        "-c",
        "echo once",
    ]);
    assert_eq!(created.trim(), "job.batch/once created");
    let job = kube.json(&["get", "job", "once"]);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never", "{job}");
    assert_eq!(pod["containers"][0]["image"], "docker.io/local/busybox:1");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!(["sh", "-c", "echo once"])
    );

    kube.ok(&[
        "create",
        "cronjob",
        "tick",
        "--image=docker.io/local/busybox:1",
        "--schedule=*/5 * * * *",
        "--restart=OnFailure",
        "--",
        "date",
    ]);
    let cron = kube.json(&["get", "cronjob", "tick"]);
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *", "{cron}");
    let template = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(template["restartPolicy"], "OnFailure", "{cron}");
    assert_eq!(
        template["containers"][0]["command"],
        serde_json::json!(["date"])
    );
    let manual = kube.ok(&["create", "job", "tick-now", "--from=cronjob/tick"]);
    assert_eq!(manual.trim(), "job.batch/tick-now created");
    let from = kube.json(&["get", "job", "tick-now"]);
    assert_eq!(
        from["metadata"]["ownerReferences"][0]["kind"], "CronJob",
        "{from}"
    );
    assert_eq!(
        from["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["date"])
    );

    kube.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let web = kube.json(&["get", "service", "web"]);
    assert_eq!(web["spec"]["ports"][0]["port"], 80, "{web}");
    assert_eq!(web["spec"]["ports"][0]["targetPort"], 8080, "{web}");
    assert_eq!(web["spec"]["selector"]["app"], "web", "{web}");
    assert!(
        web["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.contains('.')),
        "{web}"
    );
    kube.ok(&["create", "service", "nodeport", "edge", "--tcp=81:8081"]);
    let edge = kube.json(&["get", "service", "edge"]);
    assert_eq!(edge["spec"]["type"], "NodePort", "{edge}");
    assert!(
        edge["spec"]["ports"][0]["nodePort"]
            .as_i64()
            .is_some_and(|p| p >= 30000),
        "{edge}"
    );

    kube.ok(&[
        "create",
        "quota",
        "small",
        "--hard=pods=4,requests.cpu=1",
        "--scopes=NotTerminating",
    ]);
    let quota = kube.json(&["get", "resourcequota", "small"]);
    assert_eq!(quota["spec"]["hard"]["pods"], "4", "{quota}");
    assert_eq!(quota["spec"]["hard"]["requests.cpu"], "1", "{quota}");
    assert_eq!(
        quota["spec"]["scopes"],
        serde_json::json!(["NotTerminating"])
    );
}

#[test]
fn stock_kubectl_prints_its_usual_errors_and_answers_can_i() {
    let Some(kube) = Kube::start("kubectl-errors", &["--agents", "0"]) else {
        return;
    };
    let missing = kube.fails(&["get", "pod", "nosuch"]);
    assert!(
        missing.contains("Error from server (NotFound): pods \"nosuch\" not found"),
        "{missing}"
    );

    let cm = kube.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: once}\ndata: {a: b}\n",
    );
    kube.ok(&["create", "-f", &cm]);
    let twice = kube.fails(&["create", "-f", &cm]);
    assert!(
        twice.contains("Error from server (AlreadyExists)")
            && twice.contains("configmaps \"once\" already exists"),
        "{twice}"
    );

    let stale = kube.file(
        "stale.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: once, resourceVersion: \"1\"}\ndata: {a: c}\n",
    );
    let conflict = kube.fails(&["replace", "-f", &stale]);
    assert!(
        conflict.contains("Error from server (Conflict)")
            && conflict.contains("Operation cannot be fulfilled on configmaps \"once\""),
        "{conflict}"
    );

    let bad = kube.file(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: []\n",
    );
    let invalid = kube.fails(&["apply", "-f", &bad]);
    assert!(
        invalid.contains("The Pod \"Bad_Name\" is invalid")
            && invalid.contains("metadata.name")
            && invalid.contains("spec.containers"),
        "{invalid}"
    );

    let unknown_field = kube.file(
        "typo.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: typo}\nspec:\n  containerz: []\n",
    );
    let strict = kube.fails(&["apply", "-f", &unknown_field]);
    assert!(strict.contains("containerz"), "{strict}");

    // Impersonation goes through the same RBAC as gRPC callers.
    let forbidden = kube.fails(&["get", "pods", "--as", "bob"]);
    assert!(
        forbidden.contains("Error from server (Forbidden): pods is forbidden: User \"bob\" cannot list resource \"pods\""),
        "{forbidden}"
    );
    assert_eq!(kube.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    let bob = kube.run(&["auth", "can-i", "create", "pods", "--as", "bob"]);
    assert_ne!(bob.code, 0);
    assert!(bob.stdout.starts_with("no"), "{}", bob.stdout);
    kube.ok(&[
        "create",
        "rolebinding",
        "bob-edit",
        "--clusterrole=edit",
        "--user=bob",
    ]);
    eventually("bob may list pods once bound", LIMIT, || {
        let run = kube.run(&["auth", "can-i", "list", "pods", "--as", "bob"]);
        (run.stdout.trim() == "yes").then_some(())
    });
    kube.ok(&["get", "pods", "--as", "bob"]);

    // kubectl's typed `create` and `certificate approve` (protobuf bodies from 1.32 on).
    kube.ok(&[
        "create",
        "deployment",
        "made",
        "--image=docker.io/local/busybox:1",
        "--replicas=2",
        "--",
        "sleep",
        "1000",
    ]);
    let made = kube.json(&["get", "deployment", "made"]);
    assert_eq!(made["spec"]["replicas"], 2);
    assert_eq!(
        made["spec"]["template"]["spec"]["containers"][0]["command"],
        serde_json::json!(["sleep", "1000"])
    );
    let key = kube.cluster.dir.join("jane.key");
    let request = kube.cluster.dir.join("jane.csr");
    let openssl = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=jane", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&request)
        .output();
    if !openssl.is_ok_and(|o| o.status.success()) {
        println!(
            "openssl did not make a certificate request; `kubectl certificate approve` not driven"
        );
        return;
    }
    use base64::Engine;
    let pem = std::fs::read(&request).unwrap();
    let csr = kube.file(
        "csr.yaml",
        &format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: jane}}\nspec:\n  request: {}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        ),
    );
    kube.ok(&["apply", "-f", &csr]);
    assert!(kube
        .ok(&["certificate", "approve", "jane"])
        .contains("approved"));
    eventually("jane's certificate is issued", LIMIT, || {
        let csr = kube.json(&["get", "csr", "jane"]);
        csr["status"]["certificate"].is_string().then_some(())
    });
}

#[test]
fn a_rest_watch_and_a_grpc_watch_from_one_revision_see_the_same_events() {
    let Some(kube) = Kube::start("kubectl-watch", &["--agents", "0"]) else {
        return;
    };
    // The list's own revision (`get -o json` would wrap the items in a List without one).
    let start: Value =
        serde_json::from_str(&kube.ok(&["get", "--raw", "/api/v1/namespaces/default/configmaps"]))
            .unwrap();
    assert_eq!(start["kind"], "ConfigMapList");
    let from = start["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    kube.ok(&["create", "configmap", "w1", "--from-literal=a=1"]);
    kube.ok(&["label", "configmap", "w1", "step=two"]);
    kube.ok(&["delete", "configmap", "w1"]);

    // REST: the raw watch stream from `from`, ended by the server after a few seconds.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={from}&timeoutSeconds=3"
    );
    let raw = kube.ok(&["get", "--raw", &path]);
    let rest: Vec<(String, String, String)> = raw
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).unwrap();
            (
                event["type"].as_str().unwrap().to_owned(),
                event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                event["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();

    // gRPC: the client library's watch from the same revision.
    let config =
        rafter_client::ResolvedConfig::load(Some(Path::new(&kube.cluster.config)), None).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let grpc: Vec<(String, String, String)> = runtime.block_on(async {
        let client = rafter_client::Client::connect(config).await.unwrap();
        let stream = client.watch(
            Kind::ConfigMap,
            Some("default"),
            &Default::default(),
            Some(&from),
        );
        let mut stream = Box::pin(stream);
        let mut events = Vec::new();
        while events.len() < rest.len() {
            let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the gRPC watch delivers as many events")
                .expect("the stream is open")
                .expect("no watch error");
            let kind = match next.event_type {
                WatchEventType::Added => "ADDED",
                WatchEventType::Modified => "MODIFIED",
                WatchEventType::Deleted => "DELETED",
                WatchEventType::Bookmark => continue,
            };
            let object = next.object.unwrap();
            events.push((
                kind.to_owned(),
                object.metadata().name.clone(),
                object.metadata().resource_version.clone(),
            ));
        }
        events
    });
    assert_eq!(
        rest.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["ADDED", "MODIFIED", "DELETED"],
        "{raw}"
    );
    assert_eq!(rest, grpc);
}

/// A venv with the official `kubernetes` client, made once per target dir; `None` (with
/// the reason printed) when venv or pip cannot make one.
fn python_with_kubernetes(test: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-venv");
    let python = venv.join("bin/python3");
    let has_client = |python: &Path| {
        Command::new(python)
            .args(["-c", "import kubernetes"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.is_file() && has_client(&python) {
        return Some(python);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output();
    match made {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            println!(
                "SKIPPED {test}: python3 -m venv failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
        Err(e) => {
            println!("SKIPPED {test}: no python3: {e}");
            return None;
        }
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "kubernetes"])
        .output();
    match pip {
        Ok(out) if out.status.success() && has_client(&python) => Some(python),
        Ok(out) => {
            println!(
                "SKIPPED {test}: pip install kubernetes failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            println!("SKIPPED {test}: pip did not run: {e}");
            None
        }
    }
}

const PYTHON_CLIENT: &str = r#"
import sys
from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()

names = [n.metadata.name for n in core.list_namespace().items]
assert "kube-system" in names, names

pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="py-pod", labels={"made-by": "python"}),
    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="docker.io/local/busybox:1")]),
)
created = core.create_namespaced_pod("default", pod)
assert created.metadata.uid, created

deployment = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="py-deploy"),
    spec=client.V1DeploymentSpec(
        replicas=1,
        selector=client.V1LabelSelector(match_labels={"app": "py"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "py"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="docker.io/local/busybox:1")]),
        ),
    ),
)
apps.create_namespaced_deployment("default", deployment)
listed = [d.metadata.name for d in apps.list_namespaced_deployment("default").items]
assert "py-deploy" in listed, listed

pods = core.list_namespaced_pod("default", label_selector="made-by=python")
assert [p.metadata.name for p in pods.items] == ["py-pod"], pods.items

seen = []
w = watch.Watch()
for event in w.stream(core.list_namespaced_pod, "default", label_selector="made-by=python", timeout_seconds=5):
    seen.append((event["type"], event["object"].metadata.name))
    if event["type"] == "ADDED":
        core.delete_namespaced_pod("py-pod", "default", grace_period_seconds=0)
    if event["type"] == "DELETED":
        w.stop()
assert ("ADDED", "py-pod") in seen and ("DELETED", "py-pod") in seen, seen

apps.delete_namespaced_deployment("py-deploy", "default")
try:
    apps.read_namespaced_deployment("py-deploy", "default")
    gone = False
except client.exceptions.ApiException as e:
    gone = e.status == 404
assert gone, "the deployment is still there"
print("python client ok", seen)
"#;

#[test]
fn the_python_client_lists_creates_watches_and_deletes_pods_and_deployments() {
    let test = "the_python_client_lists_creates_watches_and_deletes_pods_and_deployments";
    let Some(python) = python_with_kubernetes(test) else {
        return;
    };
    let cluster = Cluster::start_with("python-client", &["--agents", "0"]);
    let kubeconfig = cluster.dir.join("kubeconfig");
    let script = cluster.file("client.py", PYTHON_CLIENT);
    let out = Command::new(&python)
        .arg(&script)
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("python client ok"));
}

#[test]
fn stock_kubectl_attach_streams_a_containers_output_and_stdin_and_refuses_without_rights() {
    let Some(kube) = Kube::start("kubectl-attach", &["--agents", "1", "--runtime", "process"])
    else {
        return;
    };
    kubectl_attach_checks(&kube, true);
}

#[test]
fn stock_kubectl_attach_reaches_containerd_containers() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let flags = [
        "--agents",
        "1",
        "--runtime",
        "containerd",
        "--containerd-socket",
        &socket,
    ];
    let Some(kube) = Kube::start("kubectl-attach-containerd", &flags) else {
        return;
    };
    // containerd 1.6 speaks only v4.channel.k8s.io, which cannot close stdin: kubectl's
    // end of stdin does not reach cat there, so that part is left to host processes.
    kubectl_attach_checks(&kube, false);
}

/// `kubectl attach` on a cluster with one agent; `stdin_closes`: the end of kubectl's
/// stdin reaches the container (it ends, and the attach with it).
fn kubectl_attach_checks(kube: &Kube, stdin_closes: bool) {
    let pods = kube.file(
        "pods.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done']
---
apiVersion: v1
kind: Pod
metadata:
  name: echo
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [cat]
    stdin: true
    stdinOnce: true
",
    );
    kube.ok(&["apply", "-f", &pods]);
    for pod in ["talker", "echo"] {
        eventually(&format!("pod {pod} Running"), LIMIT, || {
            (kube.json(&["get", "pod", pod])["status"]["phase"] == "Running").then_some(())
        });
    }

    // The output as it comes, until kubectl is stopped: over WebSocket (the default
    // kubectl) and over SPDY/3.1 (kubectl ≤ 1.29).
    for binary in ["kubectl", "kubectl.1.27"] {
        if !kube.dir.join(binary).is_file() {
            println!("{binary} is not installed; it was not driven");
            continue;
        }
        let mut child = Command::new(kube.dir.join(binary))
            .args(["attach", "talker"])
            .env("KUBECONFIG", &kube.kubeconfig)
            .env("HOME", &kube.cluster.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl runs");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let tick = |line: String| -> u64 {
            line.strip_prefix("tick-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{binary}: not the pod's line: {line:?}"))
        };
        let first = tick(
            rx.recv_timeout(LIMIT)
                .expect("kubectl attach prints the output"),
        );
        let next = tick(rx.recv_timeout(LIMIT).expect("and what follows"));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(next, first + 1, "{binary}");
    }

    // Stdin to a container started with stdin and stdinOnce: the end of kubectl's stdin
    // (v5.channel.k8s.io's close) closes cat's, which ends, and the attach with it.
    if stdin_closes {
        let echoed = kube.run_in(&["attach", "-i", "echo", "-c", "app"], "hello\n");
        assert_eq!(echoed.code, 0, "{}", echoed.stderr);
        assert!(echoed.stdout.contains("hello\n"), "{}", echoed.stdout);
    }

    let refused = kube.fails(&["attach", "talker", "--as", "bob"]);
    assert!(
        refused.contains("Forbidden") && refused.contains("\"bob\""),
        "{refused}"
    );
}

/// `kubectl port-forward pod/web :PORT` with the default kubectl (≥ 1.31: the SPDY
/// session tunnelled in a WebSocket) and with kubectl ≤ 1.30 (plain SPDY/3.1): a local
/// port reaches the pod's HTTP server on each connection; a user who may read pods but
/// not pods/portforward hears kubectl's Forbidden. Host processes here (the agent dials
/// the port on the host).
#[test]
fn stock_kubectl_port_forward_reaches_a_pod_over_websocket_and_plain_spdy() {
    let Some(kube) = Kube::start(
        "kubectl-port-forward",
        &["--agents", "1", "--runtime", "process"],
    ) else {
        return;
    };
    // The process runtime's pods share the host's network: a port free on it now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = kube.cluster.dir.join("www").display().to_string();
    kubectl_port_forward_checks(&kube, port, &dir);
}

/// As above, into a containerd container (through containerd's streaming server).
#[test]
fn stock_kubectl_port_forward_reaches_a_containerd_pod() {
    let Ok(socket) = std::env::var("RAFTER_CONTAINERD_SOCK") else {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    };
    let flags = [
        "--agents",
        "1",
        "--runtime",
        "containerd",
        "--containerd-socket",
        &socket,
    ];
    let Some(kube) = Kube::start("kubectl-port-forward-containerd", &flags) else {
        return;
    };
    kubectl_port_forward_checks(&kube, 8080, "/www");
}

/// A busybox HTTP server pod `web` on `port` (serving `dir`), then port-forward to it
/// with each kubectl, then bob's refusal.
fn kubectl_port_forward_checks(kube: &Kube, port: u16, dir: &str) {
    let web = kube.file(
        "web.yaml",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'mkdir -p {dir} && echo hello-from-pod > {dir}/index.html && head -c 1048576 /dev/zero | tr \"\\0\" z > {dir}/big && exec busybox httpd -f -p {port} -h {dir}']
    readinessProbe:
      tcpSocket:
        port: {port}
      periodSeconds: 1
"
        ),
    );
    kube.ok(&["apply", "-f", &web]);
    eventually("pod web Ready", LIMIT, || {
        let pod = kube.json(&["get", "pod", "web"]);
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(())
    });
    let remote = format!(":{port}");
    let mut driven = 0;
    for binary in ["kubectl", "kubectl.1.30", "kubectl.1.27"] {
        if !kube.dir.join(binary).is_file() {
            println!("{binary} is not installed; it was not driven");
            continue;
        }
        driven += 1;
        // At -v=4 kubectl logs a fall back from WebSocket to SPDY: the default kubectl
        // must not need one.
        let (mut child, lines) = kube.spawn(binary, &["port-forward", "pod/web", &remote, "-v=4"]);
        let first = lines
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("{binary}: port-forward prints where it listens"));
        let local: u16 = first
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.strip_suffix(&format!(" -> {port}")))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{binary}: not kubectl's line: {first:?}"));
        for round in 0..2 {
            let answer = http_get(local, "/");
            assert!(
                answer.starts_with("HTTP/1.") && answer.contains("hello-from-pod"),
                "{binary}, connection {round}: {answer:?}"
            );
        }
        // A megabyte: far past a flow-control window, whole.
        let answer = http_get(local, "/big");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        assert_eq!(
            body.len(),
            1 << 20,
            "{binary}: {}",
            &answer[..answer.len().min(300)]
        );
        assert!(body.bytes().all(|b| b == b'z'), "{binary}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{binary}: port-forward still runs after its connections closed"
        );
        let _ = child.kill();
        let _ = child.wait();
        let mut log = String::new();
        use std::io::Read;
        let _ = child
            .stderr
            .take()
            .expect("stderr is piped")
            .read_to_string(&mut log);
        assert!(
            !log.contains("fallback to secondary dialer"),
            "{binary} fell back from WebSocket: {log}"
        );
        if binary == "kubectl" {
            assert!(
                log.contains("Before WebSocket Upgrade Connection"),
                "the default kubectl tunnels in a WebSocket: {log}"
            );
        }
    }
    assert!(driven > 0, "no kubectl was driven");

    // Nothing listens on port 1: the connection closes with nothing, and kubectl prints
    // the error the error stream carried, naming the port.
    for binary in ["kubectl", "kubectl.1.27"] {
        if !kube.dir.join(binary).is_file() {
            continue;
        }
        let (mut child, lines) = kube.spawn(binary, &["port-forward", "pod/web", ":1"]);
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, errors) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(LIMIT)
            .unwrap_or_else(|_| panic!("{binary}: port-forward prints where it listens"));
        let local: u16 = first
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(p, _)| p.parse().ok())
            .unwrap_or_else(|| panic!("{binary}: not kubectl's line: {first:?}"));
        let answer = http_get(local, "/");
        assert!(answer.is_empty(), "{binary}: {answer:?}");
        let deadline = Instant::now() + LIMIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match errors.recv_timeout(left) {
                Ok(line) if line.contains("error forwarding port 1") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("{binary} never printed the error: {seen:?}"),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    // bob may read pods (kubectl reads the pod first), not forward to them.
    kube.ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb",
        "get,list",
        "--resource",
        "pods",
    ]);
    kube.ok(&[
        "create",
        "rolebinding",
        "bob-reads",
        "--role",
        "pod-reader",
        "--user",
        "bob",
    ]);
    for binary in ["kubectl", "kubectl.1.27"] {
        if !kube.dir.join(binary).is_file() {
            continue;
        }
        let refused = kube.run_with(binary, &["port-forward", "pod/web", &remote, "--as", "bob"]);
        assert_ne!(refused.code, 0, "{binary}: {}", refused.stdout);
        assert!(
            refused.stderr.contains("forbidden")
                && refused.stderr.contains("\"bob\"")
                && refused.stderr.contains("portforward"),
            "{binary}: {}",
            refused.stderr
        );
    }
}

/// `GET path` through `127.0.0.1:port`: the whole answer.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the local port");
    socket.set_read_timeout(Some(LIMIT)).unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n").as_bytes())
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer
}
