//! `rafter top` on a `rafter up` cluster with one agent (host processes): measured usage
//! of nodes and pods in kubectl's shape (through the agent's TLS endpoint: it joined
//! through TLS bootstrap), and `<unknown>` for a node whose agent is gone or whose
//! endpoint presents a certificate that is not that node's.

use std::time::Duration;

use crate::cluster::{eventually, Cluster};

const PODS: &str = "apiVersion: v1
kind: Pod
metadata:
  name: burner
spec:
  containers:
  - name: app
    image: docker.io/local/busybox:1
    command: [sh, -c, 'while :; do :; done']
  - name: side
    image: docker.io/local/busybox:1
    command: [sh, -c, 'exec sleep 3600']
---
apiVersion: v1
kind: Node
metadata:
  name: ghost
  annotations:
    rafter.io/agent-logs-endpoint: http://127.0.0.1:9
";

const LIMIT: Duration = Duration::from_secs(60);

/// The millicores of a `123m` cell.
fn millis(cell: &str) -> u64 {
    cell.trim_end_matches('m').parse().unwrap_or(0)
}

#[test]
fn top_prints_measured_usage_of_nodes_and_pods_and_unknown_for_an_unreachable_node() {
    let cluster = Cluster::start_with("top", &["--agents", "1", "--runtime", "process"]);
    let manifest = cluster.file("burner.yaml", PODS);
    cluster.ok(&["apply", "-f", &manifest]);
    // A node whose "agent" endpoint is a master: TLS under the cluster CA, but the
    // certificate does not name that node, so the masters refuse to trust it.
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&cluster.config).unwrap()).unwrap();
    let master = config["clusters"][0]["cluster"]["servers"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(master.starts_with("https://"), "{master}");
    let impostor = cluster.file(
        "impostor.yaml",
        &format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: impostor\n  annotations:\n    rafter.io/agent-logs-endpoint: {master}\n"
        ),
    );
    cluster.ok(&["apply", "-f", &impostor]);

    let pods = eventually("the burner to show CPU in use", LIMIT, || {
        let run = cluster.run(&["top", "pods"]);
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with("burner"))?
            .to_owned();
        let cells: Vec<&str> = line.split_whitespace().collect();
        (run.code == 0 && millis(cells[1]) >= 50).then_some(run.stdout)
    });
    let mut lines = pods.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CPU(cores)", "MEMORY(bytes)"], "{pods}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row.len(), 3, "{pods}");
    assert!(row[1].ends_with('m') && row[2].ends_with("Mi"), "{pods}");

    let containers = cluster.ok(&["top", "pod", "burner", "--containers"]);
    let rows: Vec<Vec<&str>> = containers
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{containers}"
    );
    assert_eq!(rows.len(), 3, "{containers}");
    assert_eq!((rows[1][0], rows[1][1]), ("burner", "app"), "{containers}");
    assert_eq!((rows[2][0], rows[2][1]), ("burner", "side"), "{containers}");
    assert!(millis(rows[2][2]) < millis(rows[1][2]), "{containers}");

    let run = cluster.run(&["top", "nodes"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
        "{}",
        run.stdout
    );
    let ghost = rows.iter().find(|r| r[0] == "ghost").unwrap();
    assert_eq!(ghost[1..], ["<unknown>"; 4], "{}", run.stdout);
    assert!(run.stderr.contains("ghost"), "{}", run.stderr);
    let impostor = rows.iter().find(|r| r[0] == "impostor").unwrap();
    assert_eq!(impostor[1..], ["<unknown>"; 4], "{}", run.stdout);
    assert!(
        run.stderr
            .contains("must be issued by the cluster CA for node impostor"),
        "{}",
        run.stderr
    );
    let real = rows
        .iter()
        .skip(1)
        .find(|r| r[0] != "ghost" && r[0] != "impostor")
        .unwrap();
    assert!(
        real[1].ends_with('m') && real[2].ends_with('%'),
        "{}",
        run.stdout
    );
    assert!(
        real[3].ends_with("Mi") && real[4].ends_with('%'),
        "{}",
        run.stdout
    );
}
