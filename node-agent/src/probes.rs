//! Startup, liveness and readiness probes: one task per (running container, probe),
//! each publishing a [`ProbeState`] the pod worker reads.
//!
//! ```text
//!   ProbeWorker task: initialDelaySeconds, then every periodSeconds
//!       exec ─► runtime.exec_sync(timeoutSeconds)      exit 0 = success
//!       httpGet ─► HTTP/1.1 GET podIP:port/path         200..=399 = success
//!       tcpSocket ─► TCP connect podIP:port             connected = success
//!   result ─► step(state, ok, successThreshold, failureThreshold) ─► watch + wake worker
//!
//!   startup: runs until its first success (started) or failureThreshold failures in a
//!            row (failed), then stops; the worker starts liveness/readiness only once
//!            a container has started, and kills it when its startup probe failed
//! ```
//!
//! The counting rule ([`step`]) is pure and tested alone. This module owns the probe
//! tasks (aborted when their [`ProbeWorker`] is dropped) and the probe I/O; it must not
//! restart containers or write status: the pod worker decides what a failure means.

use std::sync::Arc;
use std::time::Duration;

use rafter_proto::v1::{ContainerPort, Probe};
use rafter_proto::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::runtime::ContainerRuntime;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ProbeKind {
    /// Failing restarts the container.
    Liveness,
    /// Failing takes the container out of Ready.
    Readiness,
    /// Until it succeeds, liveness and readiness are not run; failing restarts the
    /// container.
    Startup,
}

/// The verdict of a probe so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProbeState {
    /// Live / ready / started.
    pub(crate) healthy: bool,
    /// The last `failureThreshold` results in a row were failures.
    pub(crate) failed: bool,
    successes: u32,
    failures: u32,
}

impl ProbeState {
    /// Before any result: liveness assumes alive, readiness assumes not ready, startup
    /// assumes not started.
    pub(crate) fn initial(kind: ProbeKind) -> ProbeState {
        ProbeState {
            healthy: kind == ProbeKind::Liveness,
            failed: false,
            successes: 0,
            failures: 0,
        }
    }
}

/// The state after one more result.
pub(crate) fn step(
    state: ProbeState,
    ok: bool,
    success_threshold: u32,
    failure_threshold: u32,
) -> ProbeState {
    if ok {
        let successes = state.successes.saturating_add(1);
        ProbeState {
            healthy: state.healthy || successes >= success_threshold.max(1),
            failed: false,
            successes,
            failures: 0,
        }
    } else {
        let failures = state.failures.saturating_add(1);
        ProbeState {
            healthy: state.healthy && failures < failure_threshold.max(1),
            failed: failures >= failure_threshold.max(1),
            successes: 0,
            failures,
        }
    }
}

/// A running probe task; dropping it stops the task.
pub(crate) struct ProbeWorker {
    task: JoinHandle<()>,
    state: watch::Receiver<ProbeState>,
}

impl Drop for ProbeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProbeWorker {
    /// The current verdict.
    pub(crate) fn state(&self) -> ProbeState {
        *self.state.borrow()
    }
}

/// Where a probe goes.
#[derive(Clone)]
pub(crate) struct ProbeTarget {
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub(crate) container_id: String,
    pub(crate) pod_ip: String,
    pub(crate) ports: Vec<ContainerPort>,
}

/// Starts probing; `wake` is notified whenever the verdict changes.
pub(crate) fn spawn(
    kind: ProbeKind,
    probe: Probe,
    target: ProbeTarget,
    wake: Arc<Notify>,
) -> ProbeWorker {
    let (tx, rx) = watch::channel(ProbeState::initial(kind));
    let task = tokio::spawn(async move {
        let seconds = |v: i32, default: u64| {
            Duration::from_secs(u64::try_from(v).ok().filter(|v| *v > 0).unwrap_or(default))
        };
        let initial = Duration::from_secs(u64::try_from(probe.initial_delay_seconds).unwrap_or(0));
        let period = seconds(probe.period_seconds, 10);
        let timeout = seconds(probe.timeout_seconds, 1);
        // A startup probe is done at its first success, whatever the spec says.
        let success_threshold = match kind {
            ProbeKind::Startup => 1,
            _ => u32::try_from(probe.success_threshold).unwrap_or(1),
        };
        let failure_threshold = u32::try_from(probe.failure_threshold)
            .ok()
            .filter(|v| *v > 0)
            .unwrap_or(3);
        tokio::time::sleep(initial).await;
        let mut state = ProbeState::initial(kind);
        loop {
            let ok = run_once(&probe, &target, timeout).await;
            let next = step(state, ok, success_threshold, failure_threshold);
            if !ok {
                debug!(container = %target.container_id, ?kind, failures = next.failures, "probe failed");
            }
            if (next.healthy, next.failed) != (state.healthy, state.failed) {
                let _ = tx.send(next);
                wake.notify_one();
            }
            state = next;
            if kind == ProbeKind::Startup && (state.healthy || state.failed) {
                // Started, or given up on: the verdict stays in the watch.
                return;
            }
            tokio::time::sleep(period).await;
        }
    });
    ProbeWorker { task, state: rx }
}

fn port_of(port: Option<&IntOrString>, ports: &[ContainerPort]) -> Option<u16> {
    match port? {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name == *name)
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

async fn run_once(probe: &Probe, target: &ProbeTarget, timeout: Duration) -> bool {
    if let Some(exec) = &probe.exec {
        return matches!(
            target.runtime.exec_sync(&target.container_id, &exec.command, timeout).await,
            Ok(out) if out.exit_code == 0
        );
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = port_of(http.port.as_ref(), &target.ports) else {
            return false;
        };
        let host = if http.host.is_empty() {
            &target.pod_ip
        } else {
            &http.host
        };
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let path = if http.path.is_empty() {
            "/"
        } else {
            &http.path
        };
        return matches!(
            tokio::time::timeout(timeout, http_get(host, port, path, &headers)).await,
            Ok(Ok(code)) if (200..400).contains(&code)
        );
    }
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = port_of(tcp.port.as_ref(), &target.ports) else {
            return false;
        };
        let host = if tcp.host.is_empty() {
            &target.pod_ip
        } else {
            &tcp.host
        };
        return matches!(
            tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await,
            Ok(Ok(_))
        );
    }
    // A probe with no handler never fails.
    true
}

/// A plain HTTP/1.1 GET; returns the status code.
pub(crate) async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: rafter-probe/{}\r\nAccept: */*\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response")
        })?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_fails_only_after_failure_threshold_consecutive_failures() {
        let mut s = ProbeState::initial(ProbeKind::Liveness);
        s = step(s, false, 1, 3);
        s = step(s, false, 1, 3);
        assert!(s.healthy);
        s = step(s, true, 1, 3);
        s = step(s, false, 1, 3);
        s = step(s, false, 1, 3);
        assert!(s.healthy, "a success resets the count");
        s = step(s, false, 1, 3);
        assert!(!s.healthy);
    }

    #[test]
    fn startup_starts_at_a_success_and_fails_after_failure_threshold_failures() {
        let mut s = ProbeState::initial(ProbeKind::Startup);
        assert!(!s.healthy && !s.failed);
        s = step(s, false, 1, 3);
        s = step(s, false, 1, 3);
        assert!(!s.healthy && !s.failed);
        s = step(s, true, 1, 3);
        assert!(s.healthy && !s.failed, "one success is a start");
        let mut s = ProbeState::initial(ProbeKind::Startup);
        for _ in 0..3 {
            s = step(s, false, 1, 3);
        }
        assert!(!s.healthy && s.failed);
    }

    #[test]
    fn readiness_needs_success_threshold_successes() {
        let mut s = ProbeState::initial(ProbeKind::Readiness);
        assert!(!s.healthy);
        s = step(s, true, 2, 3);
        assert!(!s.healthy);
        s = step(s, true, 2, 3);
        assert!(s.healthy);
    }

    #[tokio::test]
    async fn http_get_reads_the_status_code() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        assert_eq!(
            http_get("127.0.0.1", port, "/healthz", &[]).await.unwrap(),
            503
        );
    }
}
