//! `rafter port-forward`: local TCP ports forwarded to ports of a pod.
//!
//! ```text
//!   local client ─► 127.0.0.1:LOCAL (one listener per port and address)
//!        │ each accepted connection: its own Resources.PortForward stream
//!        ▼   (any master, pods/portforward) ─► the pod's agent ─► REMOTE in the pod
//!   bytes both ways; the local client's end of sending is passed on as a half-close,
//!   the pod's close ends the local connection
//! ```
//!
//! Ports are written as kubectl writes them: `LOCAL:REMOTE`, `REMOTE` (the same number
//! locally) or `:REMOTE` (a free local port, printed). `deploy/NAME` and `svc/NAME`
//! reach one of their running pods; a Service's ports map to its target ports. A
//! connection that cannot be made or breaks ends the command with its error, as
//! kubectl does ("lost connection to pod"); otherwise it runs until interrupted.

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use rafter_client::{Client, PortForwardSession};
use rafter_proto::api::{port_forward_request, PortForwardRequest, PortForwardStart};
use std::io::Write;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::pod_target;
use crate::session::{GlobalArgs, Session};

/// `rafter port-forward`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter port-forward web-7d9f-abcde 8080:80\n  rafter port-forward pod/web :80\n  rafter port-forward svc/web 8443:443 --address 0.0.0.0"
)]
pub struct PortForwardArgs {
    /// The pod (`NAME`, `pod/NAME`, `deploy/NAME` or `svc/NAME`).
    pod: String,
    /// The ports: `[LOCAL:]REMOTE`, or `:REMOTE` for a free local port.
    #[arg(required = true)]
    ports: Vec<String>,
    /// The local addresses to listen on (comma-separated; `localhost` is 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1", value_delimiter = ',')]
    address: Vec<String>,
}

/// One `[LOCAL:]REMOTE`: the local port (0: any free one) and the remote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortSpec {
    local: u16,
    remote: u16,
}

fn parse_port(text: &str, what: &str) -> anyhow::Result<u16> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => bail!("{what} port {text:?} is not a TCP port (1-65535)"),
    }
}

/// Parses `LOCAL:REMOTE`, `REMOTE` or `:REMOTE`.
fn parse_spec(text: &str) -> anyhow::Result<PortSpec> {
    match text.split_once(':') {
        None => {
            let port = parse_port(text, "the")?;
            Ok(PortSpec {
                local: port,
                remote: port,
            })
        }
        Some(("", remote)) => Ok(PortSpec {
            local: 0,
            remote: parse_port(remote, "the remote")?,
        }),
        Some((local, remote)) => Ok(PortSpec {
            local: parse_port(local, "the local")?,
            remote: parse_port(remote, "the remote")?,
        }),
    }
}

fn parse_address(text: &str) -> anyhow::Result<IpAddr> {
    if text == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    text.parse()
        .with_context(|| format!("--address {text:?} is not an IP address or localhost"))
}

/// Runs `rafter port-forward` until interrupted or a connection fails.
pub fn run(args: PortForwardArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let named = pod_target::parse(&args.pod, "port-forward")?;
    let specs = args
        .ports
        .iter()
        .map(|p| parse_spec(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let addresses = args
        .address
        .iter()
        .map(|a| parse_address(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let session = Session::connect(globals)?;
    let namespace = session.namespace().to_owned();
    let client = session.client().clone();
    // Tasks on this thread only (a LocalSet): the client's stream futures are not
    // proven `Send` for every lifetime, and one thread is plenty for a few connections.
    let local = tokio::task::LocalSet::new();
    session.block_on(local.run_until(async move {
        let (pod, service) = pod_target::resolve(&client, &namespace, &named).await?;
        let name = pod
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let phase = pod
            .status
            .as_ref()
            .map(|s| s.phase.clone())
            .unwrap_or_default();
        if phase != "Running" {
            bail!("unable to forward port because pod {name:?} is not running (phase {phase:?})");
        }
        let (failed, mut failures) = tokio::sync::mpsc::channel::<String>(1);
        let mut stdout = std::io::stdout();
        for spec in &specs {
            let remote = match &service {
                Some(service) => pod_target::target_port(service, &pod, spec.remote)?,
                None => spec.remote,
            };
            for address in &addresses {
                let listener = TcpListener::bind((*address, spec.local))
                    .await
                    .with_context(|| format!("listening on {address}:{}", spec.local))?;
                let local = listener.local_addr()?;
                writeln!(stdout, "Forwarding from {local} -> {remote}")?;
                let client = client.clone();
                let target = (namespace.clone(), name.clone(), remote);
                let failed = failed.clone();
                tokio::task::spawn_local(async move {
                    loop {
                        let socket = match listener.accept().await {
                            Ok((socket, _)) => socket,
                            Err(e) => {
                                let _ = failed.send(format!("accepting on {local}: {e}")).await;
                                return;
                            }
                        };
                        println!("Handling connection for {}", local.port());
                        let client = client.clone();
                        let target = target.clone();
                        let failed = failed.clone();
                        tokio::task::spawn_local(async move {
                            if let Err(why) = forward(client, target, socket).await {
                                let _ = failed.send(why).await;
                            }
                        });
                    }
                });
            }
        }
        stdout.flush()?;
        drop(failed);
        tokio::select! {
            failure = failures.recv() => match failure {
                Some(why) => bail!("{why}; lost connection to pod {name:?}"),
                None => Ok(ExitCode::SUCCESS),
            },
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
        }
    }))
}

/// Relays one local connection through its own stream to `port` of pod `name`.
async fn forward(
    client: Client,
    (namespace, name, port): (String, String, u16),
    socket: TcpStream,
) -> Result<(), String> {
    let start = PortForwardStart {
        namespace,
        name: name.clone(),
        port: u32::from(port),
    };
    let PortForwardSession { input, mut output } =
        client.port_forward(start).await.map_err(|e| {
            let why = e.to_string();
            if why.contains("error forwarding port") {
                why
            } else {
                format!("forwarding port {port} of pod {name:?}: {why}")
            }
        })?;
    let (mut read, mut write) = socket.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let message = PortForwardRequest {
                msg: Some(port_forward_request::Msg::Data(buf[..n].to_vec())),
            };
            if input.send(message).await.is_err() {
                break;
            }
        }
        // Dropping `input` passes the local half-close on.
    });
    let result = loop {
        match output.message().await {
            Ok(Some(answer)) => {
                if write.write_all(&answer.data).await.is_err() {
                    break Ok(());
                }
            }
            Ok(None) => break Ok(()),
            Err(status) => break Err(status.message().to_owned()),
        }
    };
    let _ = write.shutdown().await;
    reader.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_written_as_kubectl_writes_them() {
        assert_eq!(
            parse_spec("8080:80").unwrap(),
            PortSpec {
                local: 8080,
                remote: 80
            }
        );
        assert_eq!(
            parse_spec(":80").unwrap(),
            PortSpec {
                local: 0,
                remote: 80
            }
        );
        assert_eq!(
            parse_spec("5432").unwrap(),
            PortSpec {
                local: 5432,
                remote: 5432
            }
        );
        assert!(parse_spec("0").is_err());
        assert!(parse_spec("x:80").is_err());
        assert!(parse_spec("80:").is_err());
        assert_eq!(parse_address("localhost").unwrap().to_string(), "127.0.0.1");
    }
}
