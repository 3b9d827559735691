//! `bench authz`: what authorization costs per request. Two gateways run side by side in
//! this process, each on its own in-memory store seeded alike: one authorizes through the
//! real chain (system:masters, the Node authorizer, RBAC) with `--bindings` RoleBindings in
//! the namespace the requests go to (the one that grants the benchmark's user is the last
//! one written), the other through an authorizer that allows everything. Closed-loop
//! clients get one ConfigMap as that user; the systems take turns, `--rounds` rounds each,
//! and the ratio is the median of per-round pairs.
//!
//! It measures only; it must not be a dependency of anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use api_gateway::testing::MemKv;
use api_gateway::{
    serve_with, Attributes, Authorizer, Decision, Registry, ServeOptions, TokenFile, UserInfo,
};
use rafter_proto::api::resources_client::ResourcesClient;
use rafter_proto::api::{self, ObjectKey};
use rafter_proto::{parse_object, Object};
use tonic::transport::Channel;

/// `bench authz`.
#[derive(Debug, clap::Args)]
pub struct AuthzArgs {
    /// RoleBindings in the requests' namespace.
    #[arg(long, default_value_t = 1000)]
    bindings: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Seconds each round measures.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds per system.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const NAMESPACE: &str = "bench";
const TOKEN: &str = "bench-user-token";
const ADMIN_TOKEN: &str = "bench-admin-token";

/// Allows every request: the "authorization off" side.
struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _: &Attributes<'_>) -> Decision {
        Decision::Allow
    }
}

/// Runs `bench authz` and prints its table.
pub fn run(args: AuthzArgs) -> anyhow::Result<()> {
    let runtime = crate::runtime()?;
    runtime.block_on(async move {
        let with = start(args.bindings, None).await?;
        let without = start(args.bindings, Some(Arc::new(AllowAll))).await?;
        let mut on = Vec::new();
        let mut off = Vec::new();
        // One warm-up round each, not counted.
        measure(&with, args.clients, Duration::from_secs(1)).await?;
        measure(&without, args.clients, Duration::from_secs(1)).await?;
        let window = Duration::from_secs(args.seconds);
        for _ in 0..args.rounds {
            on.push(measure(&with, args.clients, window).await?);
            off.push(measure(&without, args.clients, window).await?);
        }
        let mut ratios: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
        println!(
            "authorization cost: gets/s of one ConfigMap, {} clients, {} RoleBindings in the namespace, {} rounds of {} s",
            args.clients, args.bindings, args.rounds, args.seconds
        );
        println!("| round | authorization on (RBAC) | off (allow all) | on ÷ off |");
        println!("|---|---|---|---|");
        for (i, ((a, b), r)) in on.iter().zip(&off).zip(&ratios).enumerate() {
            println!("| {} | {a:.0}/s | {b:.0}/s | {r:.3} |", i + 1);
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        println!("median on ÷ off: {median:.3} (target ≥ 0.95)");
        Ok(())
    })
}

/// A gateway on a fresh in-memory store, on a loopback port, with the benchmark's user
/// bound to `edit` by the last of `bindings` RoleBindings; `authorizer` replaces the chain.
async fn start(
    bindings: usize,
    authorizer: Option<Arc<dyn Authorizer>>,
) -> anyhow::Result<Channel> {
    let store = Arc::new(MemKv::new()?);
    let registry = Registry::new(store.clone());
    let mut tokens = TokenFile::default();
    tokens.insert(TOKEN, UserInfo::new("bench-user", Vec::new()));
    tokens.insert(
        ADMIN_TOKEN,
        UserInfo::new("admin", ["system:masters".to_owned()]),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let options = ServeOptions {
        authorizer,
        ..ServeOptions::default()
    };
    let serving = registry.clone();
    tokio::spawn(async move {
        if let Err(e) = serve_with(
            listener,
            None,
            serving,
            store,
            Arc::new(tokens),
            options,
            std::future::pending(),
        )
        .await
        {
            tracing::error!(error = %e, "bench gateway stopped");
        }
    });
    let channel = Channel::from_shared(format!("http://{address}"))?
        .connect()
        .await
        .context("connecting to the bench gateway")?;
    let mut objects = vec![
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {NAMESPACE}}}\ndata: {{k: v}}\n"
        ),
    ];
    for i in 0..bindings {
        let user = if i + 1 == bindings {
            "bench-user".to_owned()
        } else {
            format!("someone-{i}")
        };
        objects.push(format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: b-{i}, namespace: {NAMESPACE}}}\nsubjects: [{{kind: User, name: {user}}}]\nroleRef: {{kind: ClusterRole, name: edit, apiGroup: rbac.authorization.k8s.io}}\n"
        ));
    }
    let mut admin = client(channel.clone(), ADMIN_TOKEN)?;
    for yaml in objects {
        let object: Object = parse_object(&yaml, "bench")?;
        admin
            .create(api::CreateRequest {
                object: Some(object.into()),
                dry_run: false,
                field_manager: Default::default(),
            })
            .await
            .context("seeding the bench gateway")?;
    }
    // Wait until the user's grant is seen (the authorization cache follows the store).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut user = client(channel.clone(), TOKEN)?;
    while get(&mut user).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bench user was never allowed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(channel)
}

type Client = chaos_tests::AdminClient;

fn client(channel: Channel, token: &str) -> anyhow::Result<Client> {
    Ok(ResourcesClient::with_interceptor(
        channel,
        chaos_tests::BearerToken::new(token.to_owned()),
    ))
}

async fn get(client: &mut Client) -> Result<(), tonic::Status> {
    client
        .get(api::GetRequest {
            key: Some(ObjectKey {
                kind: "configmaps".into(),
                namespace: NAMESPACE.into(),
                name: "c".into(),
            }),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// Gets/s of `clients` closed-loop clients over `window`.
async fn measure(channel: &Channel, clients: usize, window: Duration) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut user = client(channel.clone(), TOKEN)?;
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < window {
                get(&mut user).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), tonic::Status>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
