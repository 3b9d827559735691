//! `bench scheduler`: whole-system scheduling throughput. Three masters, thousands of
//! hollow nodes, tens of thousands of pods created at once; how fast they are bound, how
//! long each pod waits from its create to its binding, and the masters' memory after.
//!
//! Owns [`SchedulerArgs`] and the run. The masters are started as in `bench gateway`
//! (chaos-tests' harness running this binary's hidden `master` subcommand, TLS on). The
//! nodes are hollow ([`crate::hollow_nodes`]): Node objects registered Ready, Leases renewed
//! by one task. Pods are created through the client library by `--clients` concurrent
//! tasks; a watch on their namespace, opened before the first create, notes when each pod
//! is first seen with `spec.nodeName`.
//!
//! ```text
//!  bench ─┬─ register N nodes + leases ─► LeaseRenewer (every lease once per interval)
//!         ├─ watch pods (from the revision before the first create) ─► bind time per pod
//!         └─ C clients: create P pods (no nodeName) ─► leader ─► scheduler ─► Binding
//!  all bound ─► RSS of each master ─► check: every pod on an existing node, within its
//!               allocatable; every node still Ready ─► report
//! ```
//!
//! create→bind of a pod is from the moment its client sent the create to the moment the
//! watch delivered it with a node. Throughput is counted two ways: all pods over first
//! create → last bind, and the steady state, the middle 80% of binds (10th to 90th
//! percentile bind) over the time between them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use rafter_client::ListParams;
use rafter_client::{Client, ClientError, WatchEventType};
use rafter_proto::Quantity;
use rafter_proto::{v1, Kind, Object};
use tokio::time::Instant;

use crate::gateway::{library_client, single_master_client, start_cluster_with, user_client};
use crate::hollow_nodes::{node_name, register, LeaseRenewer, NodeShape};
use crate::mutation_probe::MutationProbe;
use crate::node_watchers::NodeWatchers;
use crate::report::{ms, rate, Machine};
use crate::stats::percentile;

/// The namespace the benchmark's pods go to.
const NAMESPACE: &str = "bench-scheduler";
/// The user the pods are created as.
const LOAD_USER: &str = "bench-load";
/// The user the mutation probe writes as.
const PROBE_USER: &str = "bench-probe";
/// Objects per page when the results are read back.
const PAGE: i64 = 1000;

/// `bench scheduler`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SchedulerArgs {
    /// Hollow nodes.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Pods created at once.
    #[arg(long, default_value_t = 30_000)]
    pub pods: usize,
    /// Concurrent creating clients (tokio tasks, one create in flight each).
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Client library instances (connections) the clients share.
    #[arg(long, default_value_t = 4)]
    pub conns: usize,
    /// CPU request of each pod, in millicores.
    #[arg(long, default_value_t = 100)]
    pub pod_cpu_millis: i64,
    /// Memory request of each pod, in MiB.
    #[arg(long, default_value_t = 64)]
    pub pod_memory_mib: i64,
    /// Seconds between two renewals of one node's Lease (the agent's default).
    #[arg(long, default_value_t = 10.0)]
    pub lease_interval: f64,
    /// Seconds to wait for every pod to be bound after the last create.
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// The masters' budget of `Scheduled` events per second (`rafter master
    /// --scheduled-events-per-second`); 0 writes one per pod bound.
    #[arg(long, default_value_t = 0.0)]
    pub scheduled_events_per_second: f64,
    /// The budget's burst (`--scheduled-events-burst`).
    #[arg(long, default_value_t = 100)]
    pub scheduled_events_burst: u32,
    /// Pod watchers shaped as node agents' (one per node, `spec.nodeName=<node>`, spread
    /// over the masters), opened before the first create; the run checks each saw every
    /// pod bound to its node.
    #[arg(long, default_value_t = 0)]
    pub watchers: usize,
    /// LISTs of `--list-size` pods timed after every pod is bound (0: none).
    #[arg(long, default_value_t = 0)]
    pub list_rounds: usize,
    /// Pods per timed LIST (one page of this many).
    #[arg(long, default_value_t = 10_000)]
    pub list_size: i64,
    /// Start the masters with `--no-watch-cache`.
    #[arg(long)]
    pub no_watch_cache: bool,
    /// Milliseconds between two creates of the mutation probe, which times a light steady
    /// writer's calls while the pods are created and bound (0: no probe).
    #[arg(long, default_value_t = 100)]
    pub probe_interval_ms: u64,
    /// At the end, kill -9 a follower master, start it again, and time until it answers a
    /// LIST and until a client has re-listed every pod from it.
    #[arg(long)]
    pub restart_relist: bool,
    /// A further `rafter master` flag for every master, repeatable (`--master-flag=--listen-rest=127.0.0.1:0`
    /// serves `/metrics` over REST, for reading a master's memory during a run).
    #[arg(long = "master-flag", allow_hyphen_values = true)]
    pub master_flags: Vec<String>,
}

/// A one-container pod with requests and no node.
fn pod(index: usize, args: &SchedulerArgs) -> Object {
    Object::Pod(v1::Pod {
        metadata: Some(v1::ObjectMeta {
            name: pod_name(index),
            namespace: NAMESPACE.into(),
            labels: [("app".to_owned(), "bench-scheduler".to_owned())].into(),
            ..Default::default()
        }),
        spec: Some(v1::PodSpec {
            containers: vec![v1::Container {
                name: "app".into(),
                image: "registry.k8s.io/pause:3.9".into(),
                resources: Some(v1::ResourceRequirements {
                    requests: [
                        ("cpu".to_owned(), format!("{}m", args.pod_cpu_millis)),
                        ("memory".to_owned(), format!("{}Mi", args.pod_memory_mib)),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn pod_name(index: usize) -> String {
    format!("sched-{index:06}")
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("sched-")?.parse().ok()
}

/// Per pod, when its create was sent and when it was seen bound, as nanoseconds after
/// the run's start plus one (0: not yet).
struct Timeline {
    start: Instant,
    sent: Vec<AtomicU64>,
    acked: AtomicU64,
}

impl Timeline {
    fn new(pods: usize) -> Timeline {
        Timeline {
            start: Instant::now(),
            sent: (0..pods).map(|_| AtomicU64::new(0)).collect(),
            acked: AtomicU64::new(0),
        }
    }

    fn stamp(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64 + 1
    }
}

/// Creates pods `0..pods`, `clients` at once, each retried while its outcome is unknown.
async fn create_pods(
    pool: Vec<Client>,
    args: &SchedulerArgs,
    timeline: Arc<Timeline>,
) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..args.clients.max(1) {
        let client = pool[c % pool.len()].clone();
        let (next, errors, timeline, args) = (
            Arc::clone(&next),
            Arc::clone(&errors),
            Arc::clone(&timeline),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= args.pods {
                    return Ok::<(), anyhow::Error>(());
                }
                let object = pod(i, &args);
                let deadline = Instant::now() + Duration::from_secs(60);
                timeline.sent[i].store(timeline.stamp(), Ordering::Relaxed);
                loop {
                    match client.create(object.clone()).await {
                        Ok(_) | Err(ClientError::AlreadyExists { .. }) => break,
                        Err(e) if e.is_retryable() && Instant::now() < deadline => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            return Err(anyhow::Error::from(e)
                                .context(format!("creating pod {}", pod_name(i))))
                        }
                    }
                }
                timeline
                    .acked
                    .fetch_max(timeline.stamp(), Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(errors.load(Ordering::Relaxed))
}

/// Follows the namespace's pods from `revision` until every pod was seen bound, or
/// `deadline`. Returns per pod when it was first seen bound (nanoseconds after the
/// start, plus one; 0: never).
async fn watch_binds(
    client: Client,
    revision: String,
    pods: usize,
    timeline: Arc<Timeline>,
    deadline: Arc<tokio::sync::watch::Receiver<Option<Instant>>>,
) -> anyhow::Result<Vec<u64>> {
    let mut bound = vec![0u64; pods];
    let mut count = 0;
    let params = rafter_client::WatchParams::default();
    let mut stream = Box::pin(client.watch(Kind::Pod, Some(NAMESPACE), &params, Some(&revision)));
    let mut deadline = (*deadline).clone();
    while count < pods {
        let limit = *deadline.borrow();
        let event = tokio::select! {
            event = stream.next() => event,
            () = async {
                match limit {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => break,
            _ = deadline.changed() => continue,
        };
        let Some(event) = event else {
            anyhow::bail!("the pod watch ended");
        };
        let event = event.context("the pod watch failed")?;
        if event.event_type == WatchEventType::Bookmark {
            continue;
        }
        let Some(Object::Pod(pod)) = &event.object else {
            continue;
        };
        let on_node = pod.spec.as_ref().is_some_and(|s| !s.node_name.is_empty());
        let index = pod.metadata.as_ref().and_then(|m| pod_index(&m.name));
        if let (true, Some(i)) = (on_node, index) {
            if i < pods && bound[i] == 0 {
                bound[i] = timeline.stamp();
                count += 1;
            }
        }
    }
    Ok(bound)
}

/// A follower's restart, as `--restart-relist` measures it.
struct Relist {
    id: u64,
    /// From its start until it answered a LIST.
    answered: Duration,
    /// A client's paged re-list of every pod from it, after that.
    relisted: Duration,
    pods: usize,
    /// Its VmRSS and VmHWM in KiB after the re-list: the peak is what catching up cost.
    kib: Option<(u64, u64)>,
}

/// Kills a follower, starts it again and times, from its start, the first LIST it
/// answers, then a full paged re-list of the namespace's pods from it alone, and reads its
/// memory after that.
async fn restart_and_relist(
    cluster: &mut chaos_tests::Cluster,
    leader: u64,
    pods: usize,
) -> anyhow::Result<Relist> {
    let id = cluster
        .masters()
        .iter()
        .map(|m| m.id)
        .find(|id| *id != leader)
        .ok_or_else(|| anyhow::anyhow!("no follower"))?;
    cluster.kill(id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    cluster.restart(id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let params = ListParams {
        limit: 1,
        ..Default::default()
    };
    let deadline = started + Duration::from_secs(120);
    loop {
        if let Ok(client) = single_master_client(cluster, id).await {
            if client
                .list(Kind::Pod, Some(NAMESPACE), &params)
                .await
                .is_ok()
            {
                break;
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("master {id} did not answer a LIST within 120 s of its restart");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = started.elapsed();
    let client = single_master_client(cluster, id).await?;
    let t = Instant::now();
    let items = list_all(&client, Kind::Pod, Some(NAMESPACE)).await?;
    let relisted = t.elapsed();
    if items.len() != pods {
        anyhow::bail!(
            "the re-list from master {id} read {} pods, not {pods}",
            items.len()
        );
    }
    let kib = cluster
        .masters()
        .iter()
        .find(|m| m.id == id)
        .and_then(|m| m.pid())
        .and_then(memory_kib);
    Ok(Relist {
        id,
        answered,
        relisted,
        pods: items.len(),
        kib,
    })
}

/// Times `--list-rounds` LISTs of one page of `--list-size` pods; sorted.
async fn time_lists(client: &Client, args: &SchedulerArgs) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    let params = ListParams {
        limit: args.list_size,
        ..Default::default()
    };
    for _ in 0..args.list_rounds {
        let t = Instant::now();
        let page = client.list(Kind::Pod, Some(NAMESPACE), &params).await?;
        times.push(t.elapsed());
        let want = usize::try_from(args.list_size).unwrap_or(0).min(args.pods);
        if page.items.len() != want {
            anyhow::bail!("a LIST returned {} pods, not {want}", page.items.len());
        }
    }
    times.sort_unstable();
    Ok(times)
}

/// Every object of `kind` (in `namespace`), page by page.
async fn list_all(
    client: &Client,
    kind: Kind,
    namespace: Option<&str>,
) -> anyhow::Result<Vec<Object>> {
    let mut items = Vec::new();
    let mut params = ListParams {
        limit: PAGE,
        ..Default::default()
    };
    loop {
        let page = client.list(kind, namespace, &params).await?;
        items.extend(page.items);
        match page.continue_token {
            Some(token) => params.continue_token = Some(token),
            None => return Ok(items),
        }
    }
}

fn quantity_millis(map: &rafter_proto::StringMap, name: &str) -> i128 {
    map.get(name)
        .and_then(|q| q.parse::<Quantity>().ok())
        .map_or(0, |q| q.millis())
}

/// What the read-back found.
#[derive(Debug, Default)]
struct Check {
    bound: usize,
    pending: usize,
    unknown_node: Vec<String>,
    overcommitted: Vec<String>,
    nodes_ready: usize,
    nodes: usize,
    busiest_node_pods: usize,
    scheduled_events: usize,
    /// Scheduled events listed twice (the same name), and pods with more than one.
    scheduled_listed_twice: usize,
    pods_scheduled_twice: usize,
    failed_scheduling_events: usize,
    pods_per_node: HashMap<String, usize>,
}

/// Reads every pod, node and event back and checks the placement independently of the
/// scheduler: each pod on a node that exists, no node over its allocatable cpu, memory
/// or pod count, every node still Ready.
async fn check(client: &Client) -> anyhow::Result<Check> {
    let nodes = list_all(client, Kind::Node, None).await?;
    let pods = list_all(client, Kind::Pod, Some(NAMESPACE)).await?;
    let events = list_all(client, Kind::Event, Some(NAMESPACE)).await?;
    let mut out = Check::default();
    let mut capacity: HashMap<String, (i128, i128, i128)> = HashMap::new();
    for node in &nodes {
        let Object::Node(node) = node else { continue };
        let Some(meta) = &node.metadata else { continue };
        if !meta.labels.contains_key("rafter.dev/hollow") {
            continue;
        }
        out.nodes += 1;
        let status = node.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True");
        let tainted = node.spec.as_ref().is_some_and(|s| !s.taints.is_empty());
        if ready && !tainted {
            out.nodes_ready += 1;
        }
        capacity.insert(
            meta.name.clone(),
            (
                quantity_millis(&status.allocatable, "cpu"),
                quantity_millis(&status.allocatable, "memory"),
                quantity_millis(&status.allocatable, "pods"),
            ),
        );
    }
    let mut used: HashMap<String, (i128, i128, i128)> = HashMap::new();
    for pod in &pods {
        let Object::Pod(pod) = pod else { continue };
        let spec = pod.spec.clone().unwrap_or_default();
        if spec.node_name.is_empty() {
            out.pending += 1;
            continue;
        }
        out.bound += 1;
        if !capacity.contains_key(&spec.node_name) {
            out.unknown_node.push(spec.node_name.clone());
            continue;
        }
        let entry = used.entry(spec.node_name.clone()).or_default();
        for container in &spec.containers {
            let requests = container
                .resources
                .as_ref()
                .map(|r| r.requests.clone())
                .unwrap_or_default();
            entry.0 += quantity_millis(&requests, "cpu");
            entry.1 += quantity_millis(&requests, "memory");
        }
        entry.2 += 1000;
    }
    for (node, (cpu, memory, count)) in &used {
        out.busiest_node_pods = out.busiest_node_pods.max((*count / 1000) as usize);
        out.pods_per_node
            .insert(node.clone(), (*count / 1000) as usize);
        if let Some((c, m, p)) = capacity.get(node) {
            if cpu > c || memory > m || count > p {
                out.overcommitted.push(node.clone());
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    let mut scheduled_pods: HashMap<String, usize> = HashMap::new();
    for object in &events {
        let Object::Event(event) = object else {
            continue;
        };
        match event.reason.as_str() {
            "Scheduled" => {
                out.scheduled_events += 1;
                if !names.insert(object.metadata().name.clone()) {
                    out.scheduled_listed_twice += 1;
                }
                let pod = event
                    .involved_object
                    .as_ref()
                    .map(|o| o.name.clone())
                    .unwrap_or_default();
                let times = scheduled_pods.entry(pod).or_default();
                *times += 1;
                if *times == 2 {
                    out.pods_scheduled_twice += 1;
                }
            }
            "FailedScheduling" => out.failed_scheduling_events += 1,
            _ => {}
        }
    }
    Ok(out)
}

/// One master's memory, and the CPU it used, after the run.
struct MasterMemory {
    id: u64,
    leader: bool,
    /// VmRSS and VmHWM in KiB (`None`: the process was gone).
    kib: Option<(u64, u64)>,
    /// User and system CPU seconds since the master started (`None`: it was gone).
    cpu: Option<f64>,
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (Linux's USER_HZ, 100 on every
/// architecture it exports to user space).
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it,
    // where the state is field 3; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / USER_HZ)
}

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn secs(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Runs the benchmark and prints the report.
pub(crate) async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    println!(
        "{}",
        machine.header("scheduler: pods created at once on hollow nodes, create → bind")
    );
    let shape = NodeShape::for_workload(
        args.nodes,
        args.pods,
        args.pod_cpu_millis,
        args.pod_memory_mib,
    );
    println!(
        "workload: 3 masters on 127.0.0.1 (separate processes), TLS on; {} hollow nodes \
         (allocatable cpu {}m, memory {}Mi, pods {}; leases renewed every {:.0} s by one task); \
         {} one-container pods (requests cpu {}m, memory {}Mi) created by {} clients over {} connections",
        args.nodes,
        shape.cpu_millis,
        shape.memory_mib,
        shape.pods,
        args.lease_interval,
        args.pods,
        args.pod_cpu_millis,
        args.pod_memory_mib,
        args.clients,
        args.conns,
    );
    println!();
    let per_second = args.scheduled_events_per_second.to_string();
    let burst = args.scheduled_events_burst.to_string();
    let mut flags: Vec<&str> = if args.scheduled_events_per_second > 0.0 {
        println!(
            "Scheduled events budgeted: {per_second}/s, burst {burst} (Bindings are never budgeted)"
        );
        vec![
            "--scheduled-events-per-second",
            &per_second,
            "--scheduled-events-burst",
            &burst,
        ]
    } else {
        println!("Scheduled events: one per pod bound (no budget)");
        Vec::new()
    };
    if args.no_watch_cache {
        println!("watch cache: off (--no-watch-cache)");
        flags.push("--no-watch-cache");
    } else {
        println!("watch cache: on (the masters' default)");
    }
    println!(
        "pods created as user {LOAD_USER}, the probe as {PROBE_USER} (neither in system:masters: \
         their writes take the masters' seats, queued per user)"
    );
    for flag in &args.master_flags {
        println!("masters also given: {flag}");
        flags.push(flag);
    }
    println!("starting 3 masters ...");
    let mut cluster = start_cluster_with(&flags).await?;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut pool = Vec::new();
    for _ in 0..args.conns.max(1) {
        pool.push(library_client(&cluster, leader).await?);
    }
    let admin = library_client(&cluster, leader).await?;

    let t = Instant::now();
    let leases = register(&pool, args.nodes, shape, args.clients).await?;
    println!(
        "registered {} nodes and their leases in {:.1} s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );
    let renewer = LeaseRenewer::start(
        pool.clone(),
        leases,
        Duration::from_secs_f64(args.lease_interval.max(0.5)),
    );
    admin
        .create(Object::Namespace(v1::Namespace {
            metadata: Some(v1::ObjectMeta {
                name: NAMESPACE.into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .await
        .context("creating the namespace")?;
    // The pods are created, and the probe writes, as users of their own (not members of
    // system:masters, whose requests no master queues), allowed by RBAC's `edit` role in
    // the namespace: the masters queue each user's writes apart and serve them in turn.
    admin
        .create(
            rafter_proto::parse_object(
                &format!(
                    "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
                     metadata: {{name: bench-writers, namespace: {NAMESPACE}}}\n\
                     roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}\n\
                     subjects: [{{kind: User, name: {LOAD_USER}}}, {{kind: User, name: {PROBE_USER}}}]\n"
                ),
                "bench",
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
        .await
        .context("binding the benchmark's users to the edit role")?;
    let mut loaders = Vec::new();
    for _ in 0..args.conns.max(1) {
        loaders.push(user_client(&cluster, leader, LOAD_USER).await?);
    }
    let revision = admin
        .list(
            Kind::Pod,
            Some(NAMESPACE),
            &ListParams {
                limit: 1,
                ..Default::default()
            },
        )
        .await?
        .resource_version;

    let mut watcher_clients = Vec::new();
    if args.watchers > 0 {
        // 4 connections per master, so no connection carries more than a few hundred
        // streams.
        for _ in 0..4 {
            for master in cluster.masters() {
                watcher_clients.push(library_client(&cluster, master.id).await?);
            }
        }
    }
    let node_watchers = NodeWatchers::start(
        &watcher_clients,
        NAMESPACE,
        &revision,
        args.watchers.min(args.nodes),
    );
    if args.watchers > 0 {
        println!(
            "{} node-shaped pod watchers open over {} connections",
            args.watchers.min(args.nodes),
            watcher_clients.len()
        );
    }

    let probe_client = user_client(&cluster, leader, PROBE_USER).await?;
    let probe = (args.probe_interval_ms > 0).then(|| {
        MutationProbe::start(
            probe_client.clone(),
            NAMESPACE,
            Duration::from_millis(args.probe_interval_ms),
        )
    });

    println!("creating {} pods ...", args.pods);
    let timeline = Arc::new(Timeline::new(args.pods));
    let (deadline_tx, deadline_rx) = tokio::sync::watch::channel(None);
    let watcher = tokio::spawn(watch_binds(
        library_client(&cluster, leader).await?,
        revision,
        args.pods,
        Arc::clone(&timeline),
        Arc::new(deadline_rx),
    ));
    let create_retries = create_pods(loaders, &args, Arc::clone(&timeline)).await?;
    let created_at = timeline.acked.load(Ordering::Relaxed);
    println!(
        "created {} pods in {:.1} s ({} creates/s; {} retried attempts)",
        args.pods,
        secs(created_at),
        rate(args.pods as f64 / secs(created_at).max(1e-9)),
        create_retries
    );
    let _ = deadline_tx.send(Some(
        Instant::now() + Duration::from_secs_f64(args.timeout.max(1.0)),
    ));
    let bound = watcher.await??;
    let probed = probe.map(MutationProbe::stop);

    let memory: Vec<MasterMemory> = cluster
        .masters()
        .iter()
        .map(|m| MasterMemory {
            id: m.id,
            leader: m.id == leader,
            kib: m.pid().and_then(memory_kib),
            cpu: m.pid().and_then(cpu_seconds),
        })
        .collect();
    let renewals = (
        renewer.counts.renewed.load(Ordering::Relaxed),
        renewer.counts.failed.load(Ordering::Relaxed),
        renewer.counts.max_late_ms.load(Ordering::Relaxed),
    );
    let lists = time_lists(&admin, &args).await?;
    let checked = check(&admin).await;
    let watchers_complete = match &checked {
        Ok(checked) if args.watchers > 0 => Some(
            node_watchers
                .wait_complete(
                    |i| {
                        checked
                            .pods_per_node
                            .get(&node_name(i))
                            .copied()
                            .unwrap_or(0)
                    },
                    Duration::from_secs(60),
                )
                .await,
        ),
        _ => None,
    };
    let watcher_events = node_watchers.seen.events.load(Ordering::Relaxed);
    let watchers_failed = node_watchers.seen.failed.load(Ordering::Relaxed);
    drop(node_watchers);
    // Last, as it ends the watches on the master it restarts.
    let relist = if args.restart_relist {
        Some(restart_and_relist(&mut cluster, leader, args.pods).await?)
    } else {
        None
    };
    renewer.stop().await;
    let leader_now = cluster.wait_for_leader(Duration::from_secs(5)).await.ok();
    drop(cluster);
    let checked = checked?;

    let mut latencies = Vec::new();
    let mut bind_times = Vec::new();
    for (i, &b) in bound.iter().enumerate() {
        let s = timeline.sent[i].load(Ordering::Relaxed);
        if b > 0 && s > 0 {
            latencies.push(Duration::from_nanos(b.saturating_sub(s)));
            bind_times.push(b);
        }
    }
    latencies.sort_unstable();
    bind_times.sort_unstable();
    let first_sent = timeline
        .sent
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .filter(|s| *s > 0)
        .min()
        .unwrap_or(0);
    let n = bind_times.len();
    let last_bind = bind_times.last().copied().unwrap_or(0);
    let overall = n as f64 / secs(last_bind.saturating_sub(first_sent)).max(1e-9);
    let (lo, hi) = (n / 10, (n * 9 / 10).saturating_sub(1));
    let steady = if hi > lo {
        (hi - lo) as f64 / secs(bind_times[hi] - bind_times[lo]).max(1e-9)
    } else {
        overall
    };

    println!();
    println!("| nodes | pods | clients | pods bound | bound/s (first create → last bind) | bound/s (steady, 10%–90%) | create→bind p50 ms | p99 ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        args.nodes,
        args.pods,
        args.clients,
        n,
        rate(overall),
        rate(steady),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!();
    println!(
        "first create → last create acknowledged {:.1} s, → last bind {:.1} s",
        secs(created_at.saturating_sub(first_sent)),
        secs(last_bind.saturating_sub(first_sent))
    );
    println!();
    println!("memory of the masters after every pod was bound, and the CPU they used since they started:");
    println!("| master | role | VmRSS MiB | VmHWM (peak) MiB | CPU s |");
    println!("|---:|---|---:|---:|---:|");
    for MasterMemory {
        id,
        leader,
        kib,
        cpu,
    } in &memory
    {
        let role = if *leader { "leader" } else { "follower" };
        let cpu = cpu.map_or_else(|| "-".to_owned(), |c| format!("{c:.1}"));
        match kib {
            Some((rss, hwm)) => println!(
                "| {id} | {role} | {:.0} | {:.0} | {cpu} |",
                *rss as f64 / 1024.0,
                *hwm as f64 / 1024.0
            ),
            None => println!("| {id} | {role} | - | - | {cpu} |"),
        }
    }
    let cpu: f64 = memory.iter().filter_map(|m| m.cpu).sum();
    println!(
        "the masters' CPU: {cpu:.1} s in all, {:.2} ms per pod",
        cpu * 1000.0 / args.pods.max(1) as f64
    );
    if leader_now.is_some_and(|l| l != leader) {
        println!("note: leadership moved during the run (from {leader} to {leader_now:?})");
    }
    println!();
    if let Some(probed) = &probed {
        println!(
            "mutating calls while the pods were created and bound (a ConfigMap create every \
             {} ms): {} calls, p50 {} ms, p99 {} ms, max {} ms, {} failed",
            args.probe_interval_ms,
            probed.latencies.len(),
            ms(percentile(&probed.latencies, 0.50)),
            ms(percentile(&probed.latencies, 0.99)),
            ms(probed.latencies.last().copied().unwrap_or_default()),
            probed.failures
        );
    }
    if !lists.is_empty() {
        println!(
            "LIST of {} pods (one page, from the leader), {} rounds: p50 {} ms, p99 {} ms, max {} ms",
            args.list_size,
            lists.len(),
            ms(percentile(&lists, 0.50)),
            ms(percentile(&lists, 0.99)),
            ms(lists.last().copied().unwrap_or_default()),
        );
    }
    if let Some(Relist {
        id,
        answered,
        relisted,
        pods,
        kib,
    }) = relist
    {
        println!(
            "follower master {id} killed and started again: it answered a LIST {} ms after \
             its start; a client re-listed all {pods} pods from it in {} ms after that",
            ms(answered),
            ms(relisted)
        );
        if let Some((rss, hwm)) = kib {
            println!(
                "restarted master {id}: VmRSS {:.0} MiB, VmHWM (peak since its start) {:.0} MiB",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            );
        }
    }
    if let Some(complete) = watchers_complete {
        println!(
            "node watchers: {complete} of {} saw every pod bound to their node; {} events \
             delivered; {} watches ended early",
            args.watchers.min(args.nodes),
            watcher_events,
            watchers_failed
        );
    }
    println!(
        "lease renewals: {} done, {} failed, latest start {} ms after due",
        renewals.0, renewals.1, renewals.2
    );
    println!(
        "read back: {} pods bound, {} pending; {} of {} nodes Ready and untainted; \
         most pods on one node: {}; events: {} Scheduled ({} listed twice, {} pods with \
         more than one), {} FailedScheduling",
        checked.bound,
        checked.pending,
        checked.nodes_ready,
        checked.nodes,
        checked.busiest_node_pods,
        checked.scheduled_events,
        checked.scheduled_listed_twice,
        checked.pods_scheduled_twice,
        checked.failed_scheduling_events,
    );
    println!();
    print!("{}", machine.footer());

    if let Some(complete) = watchers_complete {
        let watchers = args.watchers.min(args.nodes);
        if complete < watchers || watchers_failed > 0 {
            anyhow::bail!(
                "{complete} of {watchers} node watchers saw every pod of their node \
                 ({watchers_failed} ended early)"
            );
        }
    }
    if n < args.pods {
        anyhow::bail!(
            "only {n} of {} pods were seen bound within {:.0} s of the last create",
            args.pods,
            args.timeout
        );
    }
    if checked.bound != args.pods || checked.pending > 0 {
        anyhow::bail!(
            "read back {} bound and {} pending pods, expected {} bound",
            checked.bound,
            checked.pending,
            args.pods
        );
    }
    if !checked.unknown_node.is_empty() {
        anyhow::bail!(
            "pods bound to nodes that do not exist: {:?}",
            checked.unknown_node
        );
    }
    if !checked.overcommitted.is_empty() {
        anyhow::bail!(
            "nodes with more requested than allocatable: {:?}",
            checked.overcommitted
        );
    }
    if checked.nodes != args.nodes || checked.nodes_ready != args.nodes {
        anyhow::bail!(
            "{} of {} nodes Ready and untainted at the end (expected all {})",
            checked.nodes_ready,
            checked.nodes,
            args.nodes
        );
    }
    println!(
        "verified: every pod bound to an existing node ({}..{}), none over its allocatable, every node Ready",
        node_name(0),
        node_name(args.nodes.saturating_sub(1))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_carry_their_index() {
        assert_eq!(pod_index(&pod_name(42)), Some(42));
        assert_eq!(pod_index("web-1"), None);
    }

    #[test]
    fn cpu_time_is_read_from_proc_stat_and_grows_with_work() {
        let before = cpu_seconds(std::process::id()).expect("this process's stat");
        // Spin until the process has used 50 ms more, or give up after 10 s of wall time.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (mut after, mut x) = (before, 0u64);
        while after < before + 0.05 && std::time::Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = cpu_seconds(std::process::id()).expect("this process's stat");
        }
        assert!(after >= before + 0.05, "{before} -> {after}");
        assert_eq!(cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn memory_is_read_from_proc_status() {
        let (rss, hwm) = memory_kib(std::process::id()).expect("this process's status");
        assert!(rss > 0 && hwm >= rss);
    }
}
