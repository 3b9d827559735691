//! `bench store`: our store against etcd, the same workload on both, side by side.
//!
//! Owns [`StoreArgs`], [`LoadArgs`] and the comparison: start three members of each system
//! and preload keys, then for each concurrency level rounds of a put phase and of a
//! linearizable get phase against the leader, the two systems taking turns (only one is
//! loaded at a time; the other idles), then leader failovers. Taking turns pairs each of our
//! rounds with one of etcd's run moments later, so a change in the machine's load over the
//! run shows in both sides of a ratio rather than in one.
//!
//! ```text
//!  bench ─┬─ rafter: 3 × `bench member` ─┐  per level, per round: put rafter, put etcd,
//!         └─ etcd:   3 × /usr/bin/etcd   ─┘  then get rafter, get etcd   ─► kill -9 leader × N
//!                                      └──► table: medians, rafter/etcd ratios per round pair
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::KvCluster;
use crate::etcd_cluster::{etcd_version, EtcdCluster};
use crate::failover::kv_failover;
use crate::kv_client::{get_key, put_key, value, KvClients};
use crate::rafter_cluster::RafterCluster;
use crate::report::{failover_line, ms, rate, Machine};
use crate::stats::Summary;
use crate::workload::{drive, Limit, Plan};

/// Members of each system under test (ours and etcd), on this machine.
const MEMBERS: usize = 3;

/// Load settings shared by `store` and `gateway`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LoadArgs {
    /// Concurrent clients of each level.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 256])]
    pub clients: Vec<usize>,
    /// Seconds measured per phase.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of unrecorded warm-up before each phase.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Measure this many operations per phase instead of a duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// gRPC connections the clients share (client i uses connection i mod conns).
    #[arg(long, default_value_t = 4)]
    pub conns: usize,
    /// Leader kills to time (0 skips the failover measurement).
    #[arg(long, default_value_t = 3)]
    pub failover_rounds: usize,
    /// Where the members' temporary data directories go [default: the system temp dir].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Keep the members' data directories and logs (set RUST_LOG for more detail).
    #[arg(long)]
    pub keep_data: bool,
}

impl LoadArgs {
    /// The measured phase for `clients` concurrent clients.
    pub fn plan(&self, clients: usize) -> Plan {
        let limit = match self.ops {
            Some(n) => Limit::Ops(n),
            None => Limit::Duration(Duration::from_secs_f64(self.duration.max(0.1))),
        };
        Plan {
            clients,
            warmup: Duration::from_secs_f64(self.warmup.max(0.0)),
            limit,
        }
    }

    /// The directory temporary data directories are created in.
    pub fn data_root(&self) -> PathBuf {
        self.data_root.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// One line that says how phases are measured.
    pub fn describe(&self) -> String {
        let window = match self.ops {
            Some(n) => format!("{n} operations"),
            None => format!("{:.1} s", self.duration),
        };
        format!(
            "each phase: {:.1} s warm-up (not recorded), then {window} measured; \
             {} gRPC connection(s) shared by the clients",
            self.warmup, self.conns
        )
    }
}

/// `bench store`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Size of each value in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Puts go to this many distinct keys.
    #[arg(long, default_value_t = 10_000)]
    pub key_space: u64,
    /// Keys written before the phases; gets read these.
    #[arg(long, default_value_t = 1_000)]
    pub preload: u64,
    /// Measure only our store.
    #[arg(long)]
    pub skip_etcd: bool,
    /// The etcd binary (Debian's etcd-server package).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd_bin: PathBuf,
    /// An extra flag for every etcd member (repeatable), e.g. --etcd-arg=--heartbeat-interval=50.
    #[arg(long, allow_hyphen_values = true)]
    pub etcd_arg: Vec<String>,
    /// Rounds of each phase per level, the systems taking turns; the report gives medians.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// One concurrency level of one system.
#[derive(Debug, Clone)]
pub(crate) struct Level {
    /// Concurrent clients.
    pub clients: usize,
    /// The put phase, per round.
    pub put: Vec<Summary>,
    /// The linearizable get phase, per round.
    pub get: Vec<Summary>,
}

/// Everything measured on one system.
#[derive(Debug, Clone, Default)]
pub(crate) struct SystemResult {
    /// Per concurrency level.
    pub levels: Vec<Level>,
    /// Kill -9 of the leader to the first acknowledged write, per round.
    pub failover: Vec<Duration>,
}

/// Runs the whole store comparison and prints the report.
pub(crate) async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let machine = Machine::probe();
    let etcd = if args.skip_etcd {
        None
    } else {
        Some(etcd_version(&args.etcd_bin)?)
    };
    println!("{}", machine.header("store: rafter vs etcd"));
    println!(
        "workload: {} members on 127.0.0.1 (separate processes), fsync on, {}-byte values, \
         puts over {} keys, linearizable gets of {} preloaded keys, clients {:?}; all \
         requests go to the leader; each rafter member runs {} runtime thread(s), its share \
         of the CPUs",
        MEMBERS,
        args.value_size,
        args.key_space,
        args.preload,
        args.load.clients,
        crate::rafter_cluster::worker_threads_each(MEMBERS)
    );
    println!("{}", args.load.describe());
    if let Some(version) = &etcd {
        println!(
            "etcd: {} ({}), default settings{}",
            version,
            args.etcd_bin.display(),
            if args.etcd_arg.is_empty() {
                String::new()
            } else {
                format!(" plus {}", args.etcd_arg.join(" "))
            }
        );
    }
    println!();

    println!("starting {MEMBERS} rafter store members ...");
    let mut ours = Running::start(
        RafterCluster::start(&args.load.data_root(), MEMBERS as u64, args.load.keep_data).await?,
        &args,
    )
    .await?;
    let mut theirs = match &etcd {
        Some(_) => {
            println!("starting {MEMBERS} etcd members ...");
            let cluster = EtcdCluster::start(
                &args.load.data_root(),
                &args.etcd_bin,
                MEMBERS,
                &args.etcd_arg,
                args.load.keep_data,
            )
            .await?;
            Some(Running::start(cluster, &args).await?)
        }
        None => None,
    };

    let (mut ours_result, mut theirs_result) = (SystemResult::default(), SystemResult::default());
    let rounds = args.rounds.max(1);
    for &clients in &args.load.clients {
        let mut mine = Level::new(clients);
        let mut other = Level::new(clients);
        for op in [Op::Put, Op::Get] {
            for _ in 0..rounds {
                mine.push(op, ours.phase(op, clients, &args).await?);
                if let Some(theirs) = theirs.as_mut() {
                    other.push(op, theirs.phase(op, clients, &args).await?);
                }
            }
        }
        ours_result.levels.push(mine);
        theirs_result.levels.push(other);
    }
    if args.load.failover_rounds > 0 {
        ours_result.failover = ours.failover(&args).await?;
        if let Some(theirs) = theirs.as_mut() {
            theirs_result.failover = theirs.failover(&args).await?;
        }
    }
    drop(ours);
    drop(theirs);
    let (ours, theirs) = (ours_result, etcd.as_ref().map(|_| theirs_result));

    println!();
    print_table(&ours, theirs.as_ref());
    println!();
    println!("leader failover (kill -9 of the leader → first acknowledged write):");
    println!("  rafter: {}", failover_line(&ours.failover));
    if let Some(theirs) = &theirs {
        println!("  etcd:   {}", failover_line(&theirs.failover));
    }
    println!();
    print!("{}", machine.footer());
    let failed = ours
        .levels
        .iter()
        .any(|l| l.put.iter().chain(&l.get).any(|s| s.ops == 0));
    if failed {
        anyhow::bail!("a phase of our store acknowledged no operation");
    }
    Ok(())
}

/// The two phases of a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Get,
}

impl Level {
    fn new(clients: usize) -> Self {
        Level {
            clients,
            put: Vec::new(),
            get: Vec::new(),
        }
    }

    fn push(&mut self, op: Op, summary: Summary) {
        match op {
            Op::Put => self.put.push(summary),
            Op::Get => self.get.push(summary),
        }
    }
}

/// One system's started cluster, preloaded, with clients of its current leader.
struct Running<C> {
    cluster: C,
    leader: usize,
    clients: KvClients,
    value: Arc<[u8]>,
}

impl<C: KvCluster> Running<C> {
    /// Waits for a leader and writes the keys the get phases read.
    async fn start(cluster: C, args: &StoreArgs) -> anyhow::Result<Self> {
        let name = cluster.name();
        let leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
        let clients = cluster.clients(leader, args.load.conns).await?;
        let value: Arc<[u8]> = value(args.value_size).into();

        let preload_clients = 16usize;
        let preload = Plan {
            clients: preload_clients,
            warmup: Duration::ZERO,
            limit: Limit::Ops(args.preload),
        };
        let summary = drive(preload, {
            let clients = clients.clone();
            let value = value.clone();
            move |client, seq| {
                let key = format!("bench/{:08}", seq * preload_clients as u64 + client as u64);
                let clients = clients.clone();
                let value = value.to_vec();
                async move {
                    // Retried for a while: right after start an election may still be settling.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    loop {
                        match clients
                            .put(client, key.clone().into_bytes(), value.clone())
                            .await
                        {
                            Ok(()) => return Ok(()),
                            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
            }
        })
        .await?;
        if summary.errors > 0 {
            anyhow::bail!(
                "{name}: preloading failed: {}",
                summary.first_error.unwrap_or_default()
            );
        }
        Ok(Running {
            cluster,
            leader,
            clients,
            value,
        })
    }

    /// One measured phase of `op` with `clients` concurrent clients, against the leader.
    async fn phase(&mut self, op: Op, clients: usize, args: &StoreArgs) -> anyhow::Result<Summary> {
        (self.leader, self.clients) = follow_leader(
            &self.cluster,
            self.leader,
            self.clients.clone(),
            args.load.conns,
        )
        .await?;
        let plan = args.load.plan(clients);
        let summary = match op {
            Op::Put => drive(plan, put_op(&self.clients, &self.value, args.key_space)).await?,
            Op::Get => drive(plan, get_op(&self.clients, args.preload)).await?,
        };
        let name = match op {
            Op::Put => "put",
            Op::Get => "get",
        };
        report_phase(self.cluster.name(), name, clients, &summary);
        Ok(summary)
    }

    /// Leader kills, timed to the first acknowledged write after each.
    async fn failover(&mut self, args: &StoreArgs) -> anyhow::Result<Vec<Duration>> {
        let samples =
            kv_failover(&mut self.cluster, args.load.failover_rounds, &self.value).await?;
        println!(
            "{}: leader failover {}",
            self.cluster.name(),
            failover_line(&samples)
        );
        Ok(samples)
    }
}

/// Before a phase: if leadership moved (say, an election under load in the previous
/// phase), say so and point the clients at the new leader, so every phase measures
/// requests to the leader.
async fn follow_leader<C>(
    cluster: &C,
    leader: usize,
    clients: KvClients,
    conns: usize,
) -> anyhow::Result<(usize, KvClients)>
where
    C: KvCluster,
{
    let now = cluster.wait_for_leader(Duration::from_secs(30)).await?;
    if now == leader {
        return Ok((leader, clients));
    }
    println!(
        "{}: leadership moved from member {} to member {} (an election during the run)",
        cluster.name(),
        leader + 1,
        now + 1
    );
    Ok((now, cluster.clients(now, conns).await?))
}

fn put_op(
    clients: &KvClients,
    value: &Arc<[u8]>,
    key_space: u64,
) -> impl Fn(usize, u64) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Clone {
    let clients = clients.clone();
    let value = value.clone();
    move |client, seq| {
        let clients = clients.clone();
        let value = value.to_vec();
        Box::pin(async move {
            clients
                .put(client, put_key(client, seq, key_space), value)
                .await
        })
    }
}

fn get_op(
    clients: &KvClients,
    preloaded: u64,
) -> impl Fn(usize, u64) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Clone {
    let clients = clients.clone();
    move |client, seq| {
        let clients = clients.clone();
        Box::pin(async move {
            let key = get_key(client, seq, preloaded);
            if clients.get(client, key.clone()).await? {
                Ok(())
            } else {
                anyhow::bail!("preloaded key {} not found", String::from_utf8_lossy(&key))
            }
        })
    }
}

/// One progress line per phase, with errors if any.
pub(crate) fn report_phase(system: &str, op: &str, clients: usize, s: &Summary) {
    println!(
        "{system}: {op} @ {clients:>3} clients: {:>8} ops/s  p50 {:>7} ms  p99 {:>7} ms  max {:>7} ms  ({} ops in {:.2} s)",
        rate(s.per_sec()),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        s.ops,
        s.elapsed.as_secs_f64()
    );
    if s.errors > 0 {
        println!(
            "{system}: {op} @ {clients} clients: {} errors, first: {}",
            s.errors,
            s.first_error.as_deref().unwrap_or("?")
        );
    }
}

/// The median of `values` (0 when empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Medians over rounds: ops/s, p50 and p99 (ms).
fn medians(rounds: &[Summary]) -> (f64, f64, f64) {
    let of = |f: &dyn Fn(&Summary) -> f64| median(rounds.iter().map(f).collect());
    (
        of(&|s| s.per_sec()),
        of(&|s| s.p50.as_secs_f64() * 1000.0),
        of(&|s| s.p99.as_secs_f64() * 1000.0),
    )
}

/// The median over round pairs of `ours ÷ theirs` of `f`.
fn paired_ratio(ours: &[Summary], theirs: &[Summary], f: impl Fn(&Summary) -> f64) -> String {
    let ratios: Vec<f64> = ours
        .iter()
        .zip(theirs)
        .filter(|(_, t)| f(t) > 0.0)
        .map(|(o, t)| f(o) / f(t))
        .collect();
    if ratios.is_empty() {
        return "-".into();
    }
    let spread = ratios
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(" ");
    format!("{:.2} ({spread})", median(ratios))
}

fn print_table(ours: &SystemResult, theirs: Option<&SystemResult>) {
    println!(
        "medians over rounds; ratios: the median of each round's rafter/etcd, each round in brackets"
    );
    println!(
        "| clients | op | rafter ops/s | rafter p50 ms | rafter p99 ms | etcd ops/s | etcd p50 ms | etcd p99 ms | ops/s rafter/etcd | p99 rafter/etcd |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, level) in ours.levels.iter().enumerate() {
        let other = theirs.and_then(|t| t.levels.get(i));
        for (op, mine, their) in [
            ("put", &level.put, other.map(|o| &o.put)),
            ("get", &level.get, other.map(|o| &o.get)),
        ] {
            let (rate_mine, p50_mine, p99_mine) = medians(mine);
            let (t_rate, t_p50, t_p99, r_rate, r_p99) = match their {
                Some(t) => {
                    let (r, p50, p99) = medians(t);
                    (
                        rate(r),
                        format!("{p50:.2}"),
                        format!("{p99:.2}"),
                        paired_ratio(mine, t, Summary::per_sec),
                        paired_ratio(mine, t, |s| s.p99.as_secs_f64()),
                    )
                }
                None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
            println!(
                "| {} | {op} | {} | {p50_mine:.2} | {p99_mine:.2} | {t_rate} | {t_p50} | {t_p99} | {r_rate} | {r_p99} |",
                level.clients,
                rate(rate_mine),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(ops: u64, p99_ms: u64) -> Summary {
        let mut latencies = vec![Duration::from_millis(1); ops as usize];
        latencies[0] = Duration::from_millis(p99_ms);
        let mut s = Summary::new(latencies, 0, None, Duration::from_secs(1));
        s.p99 = Duration::from_millis(p99_ms);
        s
    }

    #[test]
    fn ratios_pair_each_round_with_its_counterpart_and_take_the_median() {
        let ours = [round(100, 2), round(300, 2), round(200, 2)];
        let theirs = [round(100, 4), round(100, 1), round(400, 4)];
        // Per pair: 1.0, 3.0, 0.5 → median 1.0, where the ratio of the medians is 200 / 100.
        assert_eq!(
            paired_ratio(&ours, &theirs, Summary::per_sec),
            "1.00 (1.00 3.00 0.50)"
        );
        assert_eq!(
            paired_ratio(&ours, &theirs, |s| s.p99.as_secs_f64()),
            "0.50 (0.50 2.00 0.50)"
        );
        let (rate, _, p99) = medians(&ours);
        assert_eq!((rate, p99), (200.0, 2.0));
        assert_eq!(paired_ratio(&ours, &[], Summary::per_sec), "-");
    }
}
