//! `bench rest`: Pod creates through the Kubernetes REST API against the gRPC API of the
//! same gateway, side by side. A gateway runs in this process on an in-memory store
//! (plaintext, bearer token of a `system:masters` user), serving both front doors; the
//! same closed-loop clients create Pods through one and then the other, `--rounds` rounds
//! each, taking turns, each run on a fresh gateway and store (a store that fills costs
//! more per create, which would favour whichever API runs first), shut down after its
//! round. gRPC clients share `--grpc-connections` HTTP/2 channels (one by default, as the
//! CLI and the client library use) and hold their Pod as a typed object; each REST client
//! keeps one HTTP/1.1 connection and sends JSON text (as client libraries do). The ratio
//! is the median of the per-round pairs of creates/s; p99 is per system over all rounds.
//!
//! First, unless `--list-pods 0`, a LIST of many pods (10,000 by default) on its own fresh
//! gateway: the pods created through gRPC, then `--list-rounds` whole-namespace LISTs
//! through each API, taking turns, with p50/p99 of each and the resident memory of this
//! process (the gateway runs in it) before and after.
//!
//! It measures only; it must not be a dependency of anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use api_gateway::testing::MemKv;
use api_gateway::{serve_with, Registry, ServeOptions, TokenFile, UserInfo};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use rafter_proto::api;
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::{parse_object, Object};
use tonic::transport::Channel;

use crate::stats::percentile;

/// `bench rest`.
#[derive(Debug, clap::Args)]
pub struct RestArgs {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each round measures.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds per API.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Pods in the namespace the LIST phase lists (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    list_pods: usize,
    /// LISTs per API in the LIST phase.
    #[arg(long, default_value_t = 20)]
    list_rounds: usize,
    /// HTTP/2 connections the gRPC clients share (1: one channel for all, as the CLI and
    /// the client library use; the REST clients have one connection each).
    #[arg(long, default_value_t = 1)]
    grpc_connections: usize,
}

const NAMESPACE: &str = "bench";
const TOKEN: &str = "bench-admin-token";

/// What one round measured.
struct Round {
    per_sec: f64,
    latencies: Vec<Duration>,
}

/// The two front doors of one gateway.
struct Gateway {
    grpc: Channel,
    grpc_uri: http::Uri,
    rest: std::net::SocketAddr,
    /// Dropped with the gateway: the server then shuts down and its store is freed.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Runs `bench rest` and prints its table.
pub fn run(args: RestArgs) -> anyhow::Result<()> {
    let runtime = crate::runtime()?;
    runtime.block_on(async move {
        // The LIST phase first, so that the memory it reports is its own gateway's.
        if args.list_pods > 0 {
            list_phase(args.list_pods, args.list_rounds).await?;
        }
        // One warm-up round each, not counted.
        let warm = start().await?;
        let channels = connections(&warm, args.grpc_connections).await?;
        measure_grpc(&channels, args.clients, Duration::from_secs(1), "warm").await?;
        measure_rest(&start().await?, args.clients, Duration::from_secs(1), "warm").await?;
        let window = Duration::from_secs(args.seconds);
        let (mut grpc, mut rest) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            let tag = format!("g{round}");
            let gateway = start().await?;
            let channels = connections(&gateway, args.grpc_connections).await?;
            grpc.push(measure_grpc(&channels, args.clients, window, &tag).await?);
            let tag = format!("r{round}");
            rest.push(measure_rest(&start().await?, args.clients, window, &tag).await?);
        }
        println!(
            "Pod creates through a gateway (in-memory store, fresh for each run, plaintext, admin token): REST (JSON, HTTP/1.1, a connection per client) against gRPC (HTTP/2, {} connection(s) shared), {} clients, {} rounds of {} s",
            args.grpc_connections.max(1), args.clients, args.rounds, args.seconds
        );
        println!("| round | REST creates/s | gRPC creates/s | REST ÷ gRPC |");
        println!("|---|---|---|---|");
        let mut ratios = Vec::new();
        for (i, (r, g)) in rest.iter().zip(&grpc).enumerate() {
            let ratio = r.per_sec / g.per_sec;
            ratios.push(ratio);
            println!("| {} | {:.0}/s | {:.0}/s | {ratio:.3} |", i + 1, r.per_sec, g.per_sec);
        }
        ratios.sort_by(f64::total_cmp);
        let p99 = |rounds: &[Round]| {
            let mut all: Vec<Duration> = rounds.iter().flat_map(|r| r.latencies.clone()).collect();
            all.sort();
            percentile(&all, 0.99)
        };
        println!(
            "p99 create latency: REST {} ms, gRPC {} ms",
            crate::report::ms(p99(&rest)),
            crate::report::ms(p99(&grpc))
        );
        println!(
            "median REST ÷ gRPC creates/s: {:.3} (target ≥ 0.80)",
            ratios[ratios.len() / 2]
        );
        Ok(())
    })
}

/// This process's resident memory, from /proc/self/status.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Creates `pods` pods through gRPC, then times whole-namespace LISTs through both APIs.
async fn list_phase(pods: usize, rounds: usize) -> anyhow::Result<()> {
    let gateway = start().await?;
    let grpc = client(gateway.grpc.clone());
    futures::stream::iter(0..pods)
        .map(|i| {
            let mut grpc = grpc.clone();
            async move {
                let pod: Object = parse_object(&pod_json(&format!("listed-{i}")), "bench")
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                grpc.create(api::CreateRequest {
                    object: Some(pod.into()),
                    dry_run: false,
                    field_manager: Default::default(),
                })
                .await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let before = rss_mib();
    let stream = tokio::net::TcpStream::connect(gateway.rest).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let uri = format!("http://{}/api/v1/namespaces/{NAMESPACE}/pods", gateway.rest);
    let (mut rest, mut grpc_times) = (Vec::new(), Vec::new());
    let mut peak = before;
    for _ in 0..rounds {
        let request = http::Request::get(&uri)
            .header("accept", "application/json")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::new(Bytes::new()))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        rest.push(sent.elapsed());
        anyhow::ensure!(
            status == http::StatusCode::OK,
            "REST LIST answered {status}"
        );
        let listed: serde_json::Value = serde_json::from_slice(&body)?;
        let items = listed["items"].as_array().map_or(0, Vec::len);
        anyhow::ensure!(items == pods, "REST LIST gave {items} pods, not {pods}");
        peak = peak.max(rss_mib());

        let mut g = grpc.clone();
        let sent = Instant::now();
        let list = g
            .list(api::ListRequest {
                kind: "Pod".to_owned(),
                namespace: NAMESPACE.to_owned(),
                ..Default::default()
            })
            .await?
            .into_inner();
        grpc_times.push(sent.elapsed());
        anyhow::ensure!(
            list.items.len() == pods,
            "gRPC LIST gave {} pods",
            list.items.len()
        );
        peak = peak.max(rss_mib());
    }
    rest.sort();
    grpc_times.sort();
    println!(
        "LIST of {pods} pods in one namespace, {rounds} times each: REST (JSON) p50 {} ms, p99 {} ms; gRPC p50 {} ms, p99 {} ms",
        crate::report::ms(percentile(&rest, 0.5)),
        crate::report::ms(percentile(&rest, 0.99)),
        crate::report::ms(percentile(&grpc_times, 0.5)),
        crate::report::ms(percentile(&grpc_times, 0.99)),
    );
    println!(
        "resident memory of the process (gateway, in-memory store and clients): {before:.0} MiB with the pods stored, {peak:.0} MiB at most while listing"
    );
    Ok(())
}

/// A gateway on a fresh in-memory store with both listeners, and the namespace.
async fn start() -> anyhow::Result<Gateway> {
    let store = Arc::new(MemKv::new()?);
    let registry = Registry::new(store.clone());
    let mut tokens = TokenFile::default();
    tokens.insert(TOKEN, UserInfo::new("admin", ["system:masters".to_owned()]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let grpc_address = listener.local_addr()?;
    let rest_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let rest = rest_listener.local_addr()?;
    let options = ServeOptions {
        rest_listener: Some(rest_listener),
        ..ServeOptions::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = serve_with(
            listener,
            None,
            registry,
            store,
            Arc::new(tokens),
            options,
            async move {
                let _ = stopped.await;
            },
        )
        .await
        {
            tracing::error!(error = %e, "bench gateway stopped");
        }
    });
    let grpc_uri: http::Uri = format!("http://{grpc_address}").parse()?;
    let grpc = Channel::builder(grpc_uri.clone())
        .connect()
        .await
        .context("connecting to the bench gateway")?;
    let namespace: Object = parse_object(
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"),
        "bench",
    )?;
    client(grpc.clone())
        .create(api::CreateRequest {
            object: Some(namespace.into()),
            dry_run: false,
            field_manager: Default::default(),
        })
        .await
        .context("creating the bench namespace")?;
    Ok(Gateway {
        grpc,
        grpc_uri,
        rest,
        _stop: stop,
    })
}

fn client(channel: Channel) -> chaos_tests::AdminClient {
    ResourcesClient::with_interceptor(channel, chaos_tests::BearerToken::new(TOKEN.to_owned()))
}

fn pod_json(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"{NAMESPACE}","labels":{{"app":"bench"}}}},"spec":{{"containers":[{{"name":"c","image":"docker.io/local/busybox:1"}}]}}}}"#
    )
}

/// `n` (at least one) gRPC channels to `gateway`: the first is the gateway's own.
async fn connections(gateway: &Gateway, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = vec![gateway.grpc.clone()];
    while channels.len() < n {
        channels.push(Channel::builder(gateway.grpc_uri.clone()).connect().await?);
    }
    Ok(channels)
}

/// Creates/s and latencies of `clients` gRPC clients over `window`, client `c` on
/// `channels[c % len]`.
async fn measure_grpc(
    channels: &[Channel],
    clients: usize,
    window: Duration,
    tag: &str,
) -> anyhow::Result<Round> {
    // Each client holds its Pod as a typed object and only renames it per create, as the
    // REST clients only format its JSON: neither side's request building is what is timed.
    let template: Object =
        parse_object(&pod_json("template"), "bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut grpc = client(channels[c % channels.len()].clone());
        let prefix = format!("{tag}-g{c}");
        let template = template.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while started.elapsed() < window {
                let mut pod = template.clone();
                pod.metadata_mut().name = format!("{prefix}-{i}");
                let sent = Instant::now();
                grpc.create(api::CreateRequest {
                    object: Some(pod.into()),
                    dry_run: false,
                    field_manager: Default::default(),
                })
                .await?;
                latencies.push(sent.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    collect(tasks, started).await
}

/// Creates/s and latencies of `clients` REST clients (one connection each) over `window`.
async fn measure_rest(
    gateway: &Gateway,
    clients: usize,
    window: Duration,
    tag: &str,
) -> anyhow::Result<Round> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let address = gateway.rest;
        let prefix = format!("{tag}-r{c}");
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let uri = format!("http://{address}/api/v1/namespaces/{NAMESPACE}/pods");
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while started.elapsed() < window {
                let body = pod_json(&format!("{prefix}-{i}"));
                let request = http::Request::post(&uri)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .body(Full::new(Bytes::from(body)))?;
                let sent = Instant::now();
                let response = sender.send_request(request).await?;
                let status = response.status();
                let answer = response.into_body().collect().await?.to_bytes();
                anyhow::ensure!(
                    status == http::StatusCode::CREATED,
                    "REST create answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                );
                latencies.push(sent.elapsed());
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    collect(tasks, started).await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>>,
    started: Instant,
) -> anyhow::Result<Round> {
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let per_sec = latencies.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Round { per_sec, latencies })
}
