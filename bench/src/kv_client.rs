//! A pool of KV clients to one member, of our store or of etcd, with one call shape.
//!
//! Owns [`KvClients`] and the workload's keys and values. Each pool holds `conns` separate
//! gRPC connections (HTTP/2 over loopback, no TLS, for both systems); client `c` uses
//! connection `c % conns`, so both systems see the same connection pattern.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::Channel;

use crate::pb::bench_kv_client::BenchKvClient;

/// How long one request may take before the client gives up on it.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one member.
#[derive(Clone)]
pub(crate) enum KvClients {
    /// Our store, through the benchmark member's gRPC service.
    Rafter(Arc<[BenchKvClient<Channel>]>),
    /// etcd, through its v3 gRPC KV API.
    Etcd(Arc<[etcd_client::KvClient]>),
}

impl KvClients {
    /// `conns` connections to a benchmark store member's KV endpoint (`host:port`).
    pub async fn rafter(addr: &str, conns: usize) -> anyhow::Result<KvClients> {
        let mut pool = Vec::new();
        for _ in 0..conns.max(1) {
            let channel = Channel::from_shared(format!("http://{addr}"))?
                .connect_timeout(Duration::from_secs(2))
                .timeout(REQUEST_TIMEOUT)
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connecting to store member at {addr}"))?;
            pool.push(BenchKvClient::new(channel));
        }
        Ok(KvClients::Rafter(pool.into()))
    }

    /// `conns` connections to an etcd member's client URL.
    pub async fn etcd(url: &str, conns: usize) -> anyhow::Result<KvClients> {
        let mut pool = Vec::new();
        for _ in 0..conns.max(1) {
            let options = etcd_client::ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(REQUEST_TIMEOUT);
            let client = etcd_client::Client::connect([url], Some(options))
                .await
                .with_context(|| format!("connecting to etcd at {url}"))?;
            pool.push(client.kv_client());
        }
        Ok(KvClients::Etcd(pool.into()))
    }

    /// Put `value` at `key` through connection `slot`.
    pub async fn put(&self, slot: usize, key: Vec<u8>, value: Vec<u8>) -> anyhow::Result<()> {
        match self {
            KvClients::Rafter(pool) => {
                let mut client = pool[slot % pool.len()].clone();
                client
                    .put(crate::pb::PutRequest { key, value })
                    .await
                    .map_err(|s| anyhow::anyhow!("put: {} {}", s.code(), s.message()))?;
            }
            KvClients::Etcd(pool) => {
                let mut client = pool[slot % pool.len()].clone();
                client.put(key, value, None).await.context("etcd put")?;
            }
        }
        Ok(())
    }

    /// Read `key` linearizably through connection `slot`; whether it exists.
    pub async fn get(&self, slot: usize, key: Vec<u8>) -> anyhow::Result<bool> {
        match self {
            KvClients::Rafter(pool) => {
                let mut client = pool[slot % pool.len()].clone();
                let reply = client
                    .get(crate::pb::GetRequest {
                        key,
                        serializable: false,
                    })
                    .await
                    .map_err(|s| anyhow::anyhow!("get: {} {}", s.code(), s.message()))?;
                Ok(reply.into_inner().found)
            }
            KvClients::Etcd(pool) => {
                let mut client = pool[slot % pool.len()].clone();
                let reply = client.get(key, None).await.context("etcd get")?;
                Ok(!reply.kvs().is_empty())
            }
        }
    }
}

/// The key client `client` writes at step `seq`: spread over `key_space` keys.
pub(crate) fn put_key(client: usize, seq: u64, key_space: u64) -> Vec<u8> {
    let n = (client as u64)
        .wrapping_mul(1_000_003)
        .wrapping_add(seq.wrapping_mul(7_919))
        % key_space.max(1);
    format!("bench/{n:08}").into_bytes()
}

/// The key client `client` reads at step `seq`: one of the `preloaded` first keys.
pub(crate) fn get_key(client: usize, seq: u64, preloaded: u64) -> Vec<u8> {
    let n = (client as u64).wrapping_mul(31).wrapping_add(seq) % preloaded.max(1);
    format!("bench/{n:08}").into_bytes()
}

/// A value of `size` pseudo-random bytes (incompressible, the same in every run).
pub(crate) fn value(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_their_key_space() {
        for client in 0..300 {
            for seq in 0..50 {
                let k = String::from_utf8(put_key(client, seq, 100)).unwrap_or_default();
                let n: u64 = k.trim_start_matches("bench/").parse().unwrap_or(u64::MAX);
                assert!(n < 100, "{k}");
                let g = String::from_utf8(get_key(client, seq, 10)).unwrap_or_default();
                let n: u64 = g.trim_start_matches("bench/").parse().unwrap_or(u64::MAX);
                assert!(n < 10, "{g}");
            }
        }
        assert_eq!(value(256).len(), 256);
        assert_eq!(value(16), value(16));
    }
}
