//! `rafter image import` and `rafter image ls` on a `rafter up` cluster with two agents,
//! each with a containerd of its own (so an image on one node is not on the other) and no
//! registry: an archive of an image no node has (the local busybox under a new name, a
//! docker archive made with skopeo) is imported into both, listed per node as pinned, and
//! runs with `imagePullPolicy: Never` on each. A user without `create` on nodes/images is
//! refused by name, a file that is not an image archive is refused by name with nothing
//! imported, and a node that fails an import does not hide the other's success (the
//! command exits non-zero). Only when `RAFTER_CONTAINERD_SOCK` says containerd is usable here.

use std::process::Command;
use std::time::Duration;

use crate::cluster::{eventually, Cluster};
use crate::dns::PrivateContainerd;

const LIMIT: Duration = Duration::from_secs(120);
const IMPORTED: &str = "docker.io/local/imported:1";
const SECOND: &str = "docker.io/local/second:1";

/// The rows of `rafter image ls` (whitespace-split), header first.
fn image_rows(cluster: &Cluster, extra: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["image", "ls"];
    args.extend_from_slice(extra);
    cluster
        .ok(&args)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The nodes whose `image ls` rows hold `image`, with its PINNED cell.
fn nodes_with(rows: &[Vec<String>], image: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = rows
        .iter()
        .skip(1)
        .filter(|r| r[1] == image)
        .map(|r| (r[0].clone(), r[4].clone()))
        .collect();
    found.sort();
    found
}

fn pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: {IMPORTED}
    imagePullPolicy: Never
    command: [sh, -c, 'exec sleep 3600']
---
"
    )
}

#[test]
fn an_imported_archive_runs_on_every_node_without_a_registry_and_only_for_those_allowed() {
    if std::env::var_os("RAFTER_CONTAINERD_SOCK").is_none() {
        println!("SKIPPED (containerd): RAFTER_CONTAINERD_SOCK is not set");
        return;
    }
    let n = std::process::id() % 100 + 100;
    let first = PrivateContainerd::start(&format!("rimga{n}"));
    let second = PrivateContainerd::start(&format!("rimgb{n}"));
    let sockets = format!("{},{}", first.sock, second.sock);
    let cluster = Cluster::start_with(
        "images",
        &[
            "--agents",
            "2",
            "--runtime",
            "containerd",
            "--containerd-socket",
            &sockets,
        ],
    );
    // An import goes to the Ready nodes: both, once they are.
    let nodes: Vec<String> = eventually("both nodes to be Ready", LIMIT, || {
        let listed = cluster.json(&["get", "nodes"]);
        let ready: Vec<String> = listed["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        (ready.len() == 2).then_some(ready)
    });

    // Both nodes list their images; the one to import is on neither.
    let rows = eventually("both nodes to list their images", LIMIT, || {
        let run = cluster.run(&["image", "ls"]);
        let rows: Vec<Vec<String>> = run
            .stdout
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect();
        (run.code == 0 && nodes_with(&rows, "docker.io/local/busybox:1").len() == 2).then_some(rows)
    });
    assert_eq!(
        rows[0],
        ["NODE", "IMAGE", "IMAGE", "ID", "SIZE", "PINNED"],
        "{rows:?}"
    );
    assert!(nodes_with(&rows, IMPORTED).is_empty(), "{rows:?}");
    let only_first = image_rows(&cluster, &["--node", &nodes[0]]);
    assert!(
        only_first.iter().skip(1).all(|r| r[0] == nodes[0]),
        "{only_first:?}"
    );

    // The archive: the local busybox as a docker archive under a name no node has.
    let archive = cluster.dir.join("imported.tar");
    let copied = Command::new("skopeo")
        .arg("copy")
        .arg(format!(
            "oci-archive:{}",
            first.dir.path().join("images/busybox.tar").display()
        ))
        .arg(format!("docker-archive:{}:{IMPORTED}", archive.display()))
        .output()
        .expect("skopeo (scripts/containerd-setup.sh installs it)");
    assert!(
        copied.status.success(),
        "skopeo copy failed: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let archive = archive.display().to_string();

    // Without the image, a pod that may not pull it does not run.
    let before = cluster.file("before.yaml", &pod("before", &nodes[0]));
    cluster.ok(&["apply", "-f", &before]);
    eventually("the pod without its image to say so", LIMIT, || {
        let pod = cluster.json(&["get", "pod", "before"]);
        let reason = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()?
            .to_owned();
        (reason == "ErrImageNeverPull").then_some(())
    });
    cluster.ok(&["delete", "pod", "before"]);

    // A user without create on nodes/images is refused, by name; so is listing.
    let refused = cluster.fails(&["image", "import", &archive, "--as", "jane"]);
    assert!(
        refused.contains("\"jane\"") && refused.contains("nodes/images"),
        "{refused}"
    );
    let refused = cluster.fails(&["image", "ls", "--as", "jane"]);
    assert!(
        refused.contains("\"jane\"") && refused.contains("nodes/images"),
        "{refused}"
    );

    // A file that is no image archive is refused by name, and nothing is imported.
    let garbage = cluster.file("garbage.tar", &"not a tar archive\n".repeat(100));
    let refused = cluster.fails(&["image", "import", &archive, &garbage]);
    assert!(refused.contains("garbage.tar"), "{refused}");
    assert!(refused.contains("nothing was imported"), "{refused}");
    let rows = image_rows(&cluster, &[]);
    assert!(nodes_with(&rows, IMPORTED).is_empty(), "{rows:?}");

    // The import reaches both nodes, each pinning the image.
    let imported = cluster.ok(&["image", "import", &archive]);
    for node in &nodes {
        assert!(
            imported.contains(&format!("node/{node}: imported {IMPORTED} from {archive}")),
            "{imported}"
        );
    }
    let rows = image_rows(&cluster, &[]);
    let pinned: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.clone(), "true".to_owned()))
        .collect();
    assert_eq!(nodes_with(&rows, IMPORTED), pinned, "{rows:?}");
    // Pinned across restarts too: the agents list it in their data directory.
    for node in &nodes {
        let file = cluster.dir.join(node).join("pinned-images");
        let listed = std::fs::read_to_string(&file).unwrap();
        assert!(listed.lines().any(|l| l == IMPORTED), "{listed}");
    }

    // A node that fails does not hide the other's result, and the command fails. (The
    // second agent cannot spool: a file where its spool directory goes.)
    let second = cluster.dir.join("second.tar");
    let copied = Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{archive}"))
        .arg(format!("docker-archive:{}:{SECOND}", second.display()))
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let spool = cluster.dir.join(&nodes[1]).join("image-imports");
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, "in the way").unwrap();
    let run = cluster.run(&["image", "import", &second.display().to_string()]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("node/{}: imported {SECOND}", nodes[0])),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("error: node/{}: importing", nodes[1])),
        "{}",
        run.stderr
    );
    let rows = image_rows(&cluster, &[]);
    assert_eq!(
        nodes_with(&rows, SECOND),
        [(nodes[0].clone(), "true".to_owned())],
        "{rows:?}"
    );

    // And a pod that may not pull runs with it on each node.
    let manifests: String = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| pod(&format!("imported-{i}"), node))
        .collect();
    let file = cluster.file("pods.yaml", &manifests);
    cluster.ok(&["apply", "-f", &file]);
    for i in 0..nodes.len() {
        let name = format!("imported-{i}");
        eventually(&format!("pod {name} to run"), LIMIT, || {
            let pod = cluster.json(&["get", "pod", &name]);
            (pod["status"]["phase"] == "Running").then_some(())
        });
    }
}
