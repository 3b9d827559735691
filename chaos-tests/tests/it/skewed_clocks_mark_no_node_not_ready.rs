//! Clocks a minute off (libfaketime): the leading master runs 60 s ahead, one agent 60 s
//! behind, one 60 s ahead, one on time. Every node stays Ready and untainted and no pod
//! is evicted, since the node lifecycle controller judges a Lease by when it saw it renew,
//! not by comparing the agent's renewTime with its own clock (which would find every one
//! of these nodes silent past the 40 s grace period at once).

use std::process::{Command, Stdio};

use crate::support::Agents;
use std::time::{Duration, Instant, SystemTime};

use chaos_tests::{rafter_binary, skewed_clock, Cluster, ClusterOptions};
use rafter_client::{Client, ListParams, ResolvedConfig};
use rafter_proto::{parse_object, Kind, Object, Timestamp};

/// The skewed master.
const SKEWED_MASTER: u64 = 3;
/// Agents and their clock offsets in seconds.
const AGENTS: [(&str, i64); 3] = [("behind", -60), ("ahead", 60), ("on-time", 0)];
/// How long nothing may go wrong once everything is Ready.
const OBSERVED_FOR: Duration = Duration::from_secs(15);

/// What is wrong with the nodes and pods now, if anything: a node not Ready or tainted by
/// the lifecycle controller, a pod gone, replaced or being deleted.
async fn trouble(client: &Client, pod_uids: &[(String, String)]) -> Option<String> {
    let nodes = client
        .list(Kind::Node, None, &ListParams::default())
        .await
        .ok()?;
    for node in &nodes.items {
        let Object::Node(n) = node else { continue };
        let name = node.metadata().name.clone();
        let ready = n.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.r#type == "Ready")
                .map(|c| c.status.clone())
        });
        if ready.as_deref() != Some("True") {
            return Some(format!("node {name} is Ready={ready:?}"));
        }
        let taints: Vec<String> = n
            .spec
            .as_ref()
            .map(|s| s.taints.iter().map(|t| t.key.clone()).collect())
            .unwrap_or_default();
        if !taints.is_empty() {
            return Some(format!("node {name} is tainted {taints:?}"));
        }
    }
    for (name, uid) in pod_uids {
        match client.get(Kind::Pod, "default", name).await {
            Ok(pod)
                if &pod.metadata().uid == uid && pod.metadata().deletion_timestamp.is_none() => {}
            Ok(pod) => {
                return Some(format!(
                    "pod {name} was replaced or is being deleted: {:?}",
                    pod.metadata()
                ))
            }
            Err(e) => return Some(format!("pod {name}: {e}")),
        }
    }
    None
}

/// The time stamp of the last line of a master's log (`<RFC 3339> LEVEL ...`, maybe
/// coloured).
fn last_log_time(log: &str) -> Option<Timestamp> {
    log.lines().rev().find_map(|line| {
        let mut plain = String::new();
        let mut in_escape = false;
        for c in line.chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => plain.push(c),
            }
        }
        Timestamp::parse(plain.split_whitespace().next()?)
    })
}

fn real_now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(millis).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_a_minute_off_mark_no_node_not_ready_and_evict_no_pod() {
    let skew_master = match skewed_clock(60) {
        Ok(env) => env,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let mut cluster = Cluster::start_with_options(
        3,
        ClusterOptions {
            env_of: [(SKEWED_MASTER, skew_master)].into(),
            ..ClusterOptions::default()
        },
    )
    .await
    .expect("a three-master cluster starts");

    // The controllers run on the leader: make the skewed master lead, by killing whoever
    // else leads until it wins an election.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leader = cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .unwrap();
        if leader == SKEWED_MASTER {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "master {SKEWED_MASTER} never won an election"
        );
        cluster.kill(leader).unwrap();
        cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .unwrap();
        cluster.restart(leader).unwrap();
    }

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("config");
    cluster.write_client_config(&config).unwrap();
    let mut agents = Agents(Vec::new());
    for (name, offset) in AGENTS {
        let child = Command::new(rafter_binary())
            .args(["agent", "--name", name, "--runtime", "hollow"])
            .args(["--lease-interval", "2s"])
            .arg("--kubeconfig")
            .arg(&config)
            .arg("--data-dir")
            .arg(work.path().join(name))
            .envs(skewed_clock(offset).unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.path().join(format!("{name}.log"))).unwrap())
            .spawn()
            .unwrap();
        agents.0.push(child);
    }
    let client = Client::connect(ResolvedConfig::load(Some(&config), None).unwrap())
        .await
        .unwrap();

    // A pod on every node.
    let mut pod_uids = Vec::new();
    for (node, _) in AGENTS {
        let pod = parse_object(
            &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: on-{node}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: 'docker.io/local/busybox:1'}}]\n"),
            "test",
        )
        .unwrap();
        let created = client.create(pod).await.unwrap();
        pod_uids.push((
            created.metadata().name.clone(),
            created.metadata().uid.clone(),
        ));
    }
    // The skew is real: the skewed master's log lines are stamped a minute ahead.
    let stamped = last_log_time(&cluster.log(SKEWED_MASTER)).expect("a time-stamped log line");
    assert!(
        stamped.since(real_now()) > Duration::from_secs(30),
        "master {SKEWED_MASTER}'s clock is not ahead: its last log line is stamped {}",
        stamped.to_rfc3339()
    );

    // Every node registers, renews and becomes Ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nodes = client
            .list(Kind::Node, None, &ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if nodes == AGENTS.len() && trouble(&client, &pod_uids).await.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node became Ready: {:?}",
            trouble(&client, &pod_uids).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The agents' clocks are off as set: their renewTimes say so.
    for (node, offset) in AGENTS {
        let lease = client
            .get(Kind::Lease, "kube-node-lease", node)
            .await
            .unwrap();
        let Object::Lease(lease) = lease else {
            panic!("not a lease")
        };
        let renewed =
            Timestamp::parse_opt(lease.spec.as_ref().unwrap().renew_time.as_ref()).unwrap();
        let off = renewed.unix_millis() - real_now().unix_millis();
        assert!(
            (off / 1000 - offset).abs() <= 10,
            "agent {node} renews {off} ms off real time, not {offset} s"
        );
    }

    // Nothing goes wrong while the skewed agents renew for a while.
    let until = Instant::now() + OBSERVED_FOR;
    while Instant::now() < until {
        if let Some(trouble) = trouble(&client, &pod_uids).await {
            panic!(
                "{trouble}\nleader's log:\n{}",
                cluster.log_tail(SKEWED_MASTER)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        cluster
            .wait_for_leader(Duration::from_secs(5))
            .await
            .unwrap(),
        SKEWED_MASTER,
        "the skewed master led throughout"
    );
}
