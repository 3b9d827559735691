//! `bench image-pull`: what pulling an image costs a pod's start — pod create → Running
//! when the image must be pulled from a registry, against the same image already present.
//!
//! ```text
//!  bench ─► docker-registry (loopback, TLS from a test CA, htpasswd; the tests' fixture)
//!    │        ▲ skopeo push: the local busybox layer + a layer of LAYER_MB random bytes
//!    │        │ (so no layer of it is on the node: pause:1 shares busybox's layer)
//!    │        └──────────── CRI PullImage (the agent's --registries-config: CA + login)
//!    ├─creates one pod at a time─► 3 masters (scheduler) ─► bench agent ─► containerd
//!    └──── watch: phase Running (latency = create call → that event)
//!  rounds "pulled":  the image is removed from containerd before each pod
//!  rounds "present": the image stays
//! ```
//!
//! Owns the image made for the run, the rounds and the report. One unmeasured warm-up
//! pod runs first in each mode. Pods are deleted between rounds; when pulling, the image
//! is removed too and the round waits until containerd's garbage collection has taken
//! every blob and snapshot the image added (`ctr content ls`, `ctr snapshots ls` back to
//! what they were before the run), so every pull fetches and unpacks the whole image. The registry is the one
//! the node-agent tests use (`node-agent/tests/it/registry.rs`, included as is).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use node_agent::{ContainerRuntime, ContainerdConfig, ContainerdRuntime};
use rafter_client::{Client, DeleteOptions};
use rafter_proto::{v1, Kind, Object};
use tokio::time::Instant;

use crate::pods::{spawn_agent_with, wait_for, wait_node_ready};
use crate::report::{ms, Machine};
use crate::stats::percentile;

// reason: the tests' registry fixture, included unchanged so the benchmark pulls from the
// same registry the pull tests do; it panics on a setup failure, which ends the benchmark
// with that message, as it ends a test.
#[allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
#[path = "../../node-agent/tests/it/registry.rs"]
mod registry;

/// `bench image-pull`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ImagePullArgs {
    /// Measured pods per mode (pulled, present), one at a time.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Size of the image's own layer of random bytes, in MiB.
    #[arg(long, default_value_t = 16)]
    layer_mb: usize,
    /// containerd's socket (set up by scripts/containerd-setup.sh, which imports the
    /// busybox image whose archive is read from `<socket dir>/images/busybox.tar`).
    #[arg(
        long,
        env = "RAFTER_CONTAINERD_SOCK",
        default_value = "/tmp/rafter-containerd/containerd.sock"
    )]
    containerd_socket: PathBuf,
}

/// Runs `command`, failing with its standard error.
fn run(command: &mut Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let out = command
        .output()
        .with_context(|| format!("{what}: starting {command:?}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

fn json_file(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// A docker archive at `dir/image.tar` named `reference`: the busybox OCI archive's layer
/// and config, plus a layer with `layer_mb` MiB of random bytes at `/bench/random`.
fn build_archive(
    busybox: &Path,
    dir: &Path,
    reference: &str,
    layer_mb: usize,
) -> anyhow::Result<PathBuf> {
    let oci = dir.join("oci");
    let out = dir.join("docker");
    std::fs::create_dir_all(&oci)?;
    std::fs::create_dir_all(out.join("bench"))?;
    run(
        Command::new("tar")
            .arg("-xf")
            .arg(busybox)
            .arg("-C")
            .arg(&oci),
        "unpacking the busybox archive",
    )?;
    let blob = |digest: &str| {
        oci.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = json_file(&oci.join("index.json"))?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .context("the busybox archive's index names no manifest")?;
    let manifest = json_file(&blob(manifest_digest))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("the busybox manifest names no config")?;
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .context("the busybox manifest names no layer")?;
    std::fs::copy(blob(layer_digest), out.join("layer1.tar"))?;

    let mut random = vec![0u8; layer_mb * 1024 * 1024];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    }
    std::fs::write(out.join("bench/random"), &random)?;
    run(
        Command::new("tar")
            .args(["--mtime=@0", "--owner=0", "--group=0", "-cf"])
            .arg(out.join("layer2.tar"))
            .arg("-C")
            .arg(&out)
            .arg("bench"),
        "making the random layer",
    )?;
    let sum = run(
        Command::new("sha256sum").arg(out.join("layer2.tar")),
        "hashing the random layer",
    )?;
    let diff_id = String::from_utf8_lossy(&sum)
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_owned();

    let mut config = json_file(&blob(config_digest))?;
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("the busybox config has no rootfs.diff_ids")?
        .push(serde_json::Value::String(format!("sha256:{diff_id}")));
    if let Some(history) = config["history"].as_array_mut() {
        history.push(serde_json::json!({"created_by": "bench image-pull: random bytes"}));
    }
    std::fs::write(out.join("config.json"), serde_json::to_vec(&config)?)?;
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": [reference],
        "Layers": ["layer1.tar", "layer2.tar"],
    }]);
    std::fs::write(out.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    let archive = dir.join("image.tar");
    run(
        Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&out)
            .args(["manifest.json", "config.json", "layer1.tar", "layer2.tar"]),
        "writing the image archive",
    )?;
    Ok(archive)
}

/// A pod of `image` that sleeps (pulled when not present).
fn pod(name: &str, image: &str) -> Object {
    Object::Pod(v1::Pod {
        metadata: Some(v1::ObjectMeta {
            name: name.to_owned(),
            namespace: "default".into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            containers: vec![v1::Container {
                name: "app".into(),
                image: image.to_owned(),
                image_pull_policy: "IfNotPresent".into(),
                command: vec!["sleep".into(), "3600".into()],
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn running(object: &Object, name: &str) -> bool {
    matches!(object, Object::Pod(p)
        if p.metadata.as_ref().is_some_and(|m| m.name == name)
            && p.status.as_ref().is_some_and(|s| s.phase == "Running"))
}

/// What containerd holds: its content blobs and snapshots (`ctr`, CRI has no such list).
fn holdings(socket: &Path) -> anyhow::Result<BTreeSet<String>> {
    let ctr = |args: &[&str]| {
        run(
            Command::new("ctr")
                .arg("-a")
                .arg(socket)
                .args(["-n", "k8s.io"])
                .args(args),
            "listing containerd's content",
        )
    };
    let content = ctr(&["content", "ls", "-q"])?;
    let snapshots = ctr(&["snapshots", "ls"])?;
    let mut all: BTreeSet<String> = String::from_utf8_lossy(&content)
        .lines()
        .map(|l| format!("content {}", l.trim()))
        .collect();
    all.extend(
        String::from_utf8_lossy(&snapshots)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(|key| format!("snapshot {key}")),
    );
    Ok(all)
}

/// Removes `image` from containerd and waits until its garbage collection has taken
/// every blob and snapshot the run added (back to `baseline`), so the next pull fetches
/// and unpacks all of it.
async fn remove_image(
    runtime: &ContainerdRuntime,
    socket: &Path,
    baseline: &BTreeSet<String>,
    image: &str,
) -> anyhow::Result<()> {
    wait_for(
        "the image's blobs and snapshots to be collected",
        Duration::from_secs(60),
        || async {
            if runtime.image_status(image).await.ok()?.is_some() {
                let _ = runtime.remove_image(image).await;
                return None;
            }
            let now = holdings(socket).ok()?;
            now.is_subset(baseline).then_some(())
        },
    )
    .await
}

/// One pod's create → Running.
async fn one_pod(client: &Client, name: &str, image: &str) -> anyhow::Result<Duration> {
    let listed = client
        .list(Kind::Pod, Some("default"), &Default::default())
        .await?;
    let mut events = Box::pin(client.watch(
        Kind::Pod,
        Some("default"),
        &Default::default(),
        Some(&listed.resource_version),
    ));
    let at = Instant::now();
    client.create(pod(name, image)).await?;
    let deadline = at + Duration::from_secs(300);
    loop {
        let event = tokio::time::timeout_at(deadline, events.next())
            .await
            .map_err(|_| anyhow::anyhow!("pod {name} not Running after 300 s"))?
            .context("the watch ended")??;
        if event.object.as_ref().is_some_and(|o| running(o, name)) {
            return Ok(at.elapsed());
        }
    }
}

/// Deletes pod `name` and waits until it is gone.
async fn delete_pod(client: &Client, name: &str) -> anyhow::Result<()> {
    client
        .delete(Kind::Pod, "default", name, &DeleteOptions::default())
        .await?;
    wait_for(
        &format!("pod {name} to be gone"),
        Duration::from_secs(120),
        || async {
            matches!(
                client.get(Kind::Pod, "default", name).await,
                Err(rafter_client::ClientError::NotFound { .. })
            )
            .then_some(())
        },
    )
    .await
}

/// `rounds` pods (after one warm-up), removing the image before each when `pull`.
async fn measure(
    client: &Client,
    containerd: (&ContainerdRuntime, &Path, &BTreeSet<String>),
    image: &str,
    mode: &str,
    rounds: usize,
    pull: bool,
) -> anyhow::Result<Vec<Duration>> {
    let (runtime, socket, baseline) = containerd;
    let mut latencies = Vec::with_capacity(rounds);
    for i in 0..=rounds {
        if pull {
            remove_image(runtime, socket, baseline, image).await?;
        }
        let name = format!("bench-{mode}-{i}");
        let took = one_pod(client, &name, image).await?;
        delete_pod(client, &name).await?;
        if i > 0 {
            latencies.push(took);
        }
    }
    latencies.sort();
    Ok(latencies)
}

/// Runs the benchmark and prints the report.
pub(crate) async fn run_bench(args: ImagePullArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("image-pull: pod create → Running, image pulled vs present")
    );
    let socket = args.containerd_socket.clone();
    let containerd_dir = socket
        .parent()
        .context("the containerd socket has no directory")?
        .to_owned();
    let busybox = containerd_dir.join("images/busybox.tar");
    anyhow::ensure!(
        busybox.exists(),
        "{} is missing: set up containerd with scripts/containerd-setup.sh",
        busybox.display()
    );
    let runtime = ContainerdRuntime::connect(ContainerdConfig::new(&socket))
        .await
        .context("containerd (start it with scripts/containerd-setup.sh)")?;

    println!("starting the registry and pushing the image ...");
    let registry = registry::TestRegistry::start("bench", "bench-password");
    let work = tempfile::tempdir()?;
    let reference_in_archive = "docker.io/bench/pull:1";
    let archive = build_archive(&busybox, work.path(), reference_in_archive, args.layer_mb)?;
    let image = registry.push(&archive, "bench/pull:1");
    println!(
        "workload: 3 masters (separate processes, TLS), one node agent (`bench agent`) on \
         containerd at {}; image {image} (busybox's layer + {} MiB of random bytes) in a \
         docker-registry on loopback (TLS, htpasswd), pulled by containerd with the agent's \
         registries config; {} pods per mode, one at a time, `imagePullPolicy: IfNotPresent`; \
         latency = create call → the watch event showing phase Running",
        socket.display(),
        args.layer_mb,
        args.rounds
    );
    let registries = work.path().join("registries.yaml");
    std::fs::write(
        &registries,
        format!(
            "configs:\n  \"{host}\":\n    auth: {{username: {user}, password: {password}}}\n    tls: {{ca_file: {ca}}}\n",
            host = registry.host,
            user = registry.user,
            password = registry.password,
            ca = registry.ca_file().display()
        ),
    )?;

    println!("starting 3 masters and the agent ...");
    let cluster = crate::gateway::start_cluster().await?;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = crate::gateway::library_client(&cluster, leader).await?;
    let node = format!("bench-pull-node-{}", std::process::id());
    let extra: Vec<OsString> = vec![
        "--registries-config".into(),
        registries.into_os_string(),
        "--containerd-certs-dir".into(),
        containerd_dir.join("certs.d").into_os_string(),
    ];
    let agent = spawn_agent_with(&cluster, work.path(), &node, &socket, 8, None, &extra)?;
    wait_node_ready(&client, &node).await?;

    // What containerd holds without the image: each pulled round starts from it.
    let _ = runtime.remove_image(&image).await;
    let baseline = holdings(&socket)?;
    let containerd = (&runtime, socket.as_path(), &baseline);
    println!("measuring: pulled ...");
    let pulled = measure(&client, containerd, &image, "pulled", args.rounds, true).await?;
    println!("measuring: present ...");
    let present = measure(&client, containerd, &image, "present", args.rounds, false).await?;
    let _ = runtime.remove_image(&image).await;

    println!();
    println!("| image | pods | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, sorted) in [("pulled", &pulled), ("present", &present)] {
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            sorted.len(),
            ms(percentile(sorted, 0.5)),
            ms(percentile(sorted, 0.99)),
            ms(sorted.first().copied().unwrap_or_default()),
            ms(sorted.last().copied().unwrap_or_default()),
        );
    }
    let ratio = |q: f64| {
        let base = percentile(&present, q).as_secs_f64();
        if base > 0.0 {
            percentile(&pulled, q).as_secs_f64() / base
        } else {
            0.0
        }
    };
    println!(
        "pulled / present: p50 ×{:.2}, p99 ×{:.2}",
        ratio(0.5),
        ratio(0.99)
    );
    println!();
    drop(agent);
    drop(cluster);
    drop(registry);
    print!("{}", machine.footer());
    Ok(())
}
