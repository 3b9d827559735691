//! A pod's resolver configuration (its `/etc/resolv.conf`), from its `dnsPolicy` and
//! `dnsConfig` as the kubelet builds it:
//!
//! | dnsPolicy | nameservers | search | options |
//! |---|---|---|---|
//! | `ClusterFirst` (default) | the cluster DNS | `<ns>.svc.<domain> svc.<domain> <domain>` + the host's | `ndots:5` |
//! | `ClusterFirst` + `hostNetwork` | as `Default` | | |
//! | `ClusterFirstWithHostNet` | as `ClusterFirst`, host network or not | | |
//! | `Default` | the runtime's (the host's `resolv.conf`) | | |
//! | `None` | only `dnsConfig` | | |
//!
//! `dnsConfig` adds (to the host's configuration for `Default`) nameservers and search domains (duplicates dropped) and options (a
//! name given again replaces the value). With no cluster DNS configured, `ClusterFirst`
//! falls back to `Default`, as the kubelet does. Owns that translation; it must not write
//! files (the runtime does, from the sandbox config).

use rafter_proto::v1::Pod;

/// The node's view of cluster DNS: where it is served and for which domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS Service's addresses (`--cluster-dns`); empty: none.
    pub servers: Vec<String>,
    /// The cluster domain (`--cluster-domain`, `cluster.local`).
    pub domain: String,
    /// The host's resolver configuration: its search domains are appended for
    /// `ClusterFirst`, and all of it is the base `Default` adds `dnsConfig` to.
    pub host: DnsSettings,
}

impl Default for ClusterDns {
    fn default() -> ClusterDns {
        ClusterDns {
            servers: Vec::new(),
            domain: "cluster.local".to_owned(),
            host: DnsSettings::default(),
        }
    }
}

/// The resolver configuration a sandbox gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line: `name` or `name:value`.
    pub options: Vec<String>,
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !value.is_empty() && !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

impl DnsSettings {
    /// The settings in resolv.conf text (the host's `/etc/resolv.conf`); empty if it
    /// does not parse.
    pub fn parse(resolv_conf: &str) -> DnsSettings {
        let Ok(config) = resolv_conf::Config::parse(resolv_conf) else {
            return DnsSettings::default();
        };
        let mut options = Vec::new();
        if config.ndots != 1 {
            options.push(format!("ndots:{}", config.ndots));
        }
        DnsSettings {
            servers: config.nameservers.iter().map(|s| s.to_string()).collect(),
            searches: config.get_search().cloned().unwrap_or_default(),
            options,
        }
    }
}

/// The resolver configuration of `pod`; `None`: the runtime's default (the host's).
pub fn pod_dns(pod: &Pod, cluster: &ClusterDns) -> Option<DnsSettings> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod
        .metadata
        .as_ref()
        .map(|m| m.namespace.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    let policy = if spec.dns_policy.is_empty() {
        "ClusterFirst"
    } else {
        spec.dns_policy.as_str()
    };
    let cluster_first = match policy {
        "ClusterFirst" => !spec.host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    } && !cluster.servers.is_empty();
    let mut settings = DnsSettings::default();
    if cluster_first {
        settings.servers = cluster.servers.clone();
        let domain = cluster.domain.trim_end_matches('.');
        for search in [
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_owned(),
        ]
        .iter()
        .chain(&cluster.host.searches)
        {
            push_unique(&mut settings.searches, search);
        }
        settings.options.push("ndots:5".to_owned());
    } else if policy != "None" {
        // Default (or ClusterFirst without cluster DNS, or on the host network): the
        // runtime's own unless dnsConfig adds to it.
        spec.dns_config.as_ref()?;
        settings = cluster.host.clone();
    }
    if let Some(config) = &spec.dns_config {
        for server in &config.nameservers {
            push_unique(&mut settings.servers, server);
        }
        for search in &config.searches {
            push_unique(&mut settings.searches, search);
        }
        for option in &config.options {
            let text = match &option.value {
                Some(value) => format!("{}:{value}", option.name),
                None => option.name.clone(),
            };
            let same = |o: &String| o.split(':').next() == Some(option.name.as_str());
            match settings.options.iter().position(same) {
                Some(i) => settings.options[i] = text,
                None => settings.options.push(text),
            }
        }
    }
    Some(settings)
}

#[cfg(test)]
#[path = "resolv_test.rs"]
mod resolv_test;
