//! [`HostInfo`]: what the node reports about the machine it runs on — CPUs, memory,
//! hostname, an internal IP, kernel and OS — read from `/proc`, `/etc` and the standard
//! library.
//!
//! Owns reading those files (blocking, so [`HostInfo::detect`] runs them in
//! `spawn_blocking`). It must not decide node conditions or talk to the API.

use std::net::{IpAddr, UdpSocket};

/// The machine as the Node object describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// Logical CPUs.
    pub cpus: u64,
    /// Physical memory in bytes (`MemTotal`).
    pub memory_bytes: u64,
    /// The host name.
    pub hostname: String,
    /// The address other nodes reach this one at.
    pub internal_ip: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// `amd64`, `arm64` ...
    pub architecture: String,
}

impl HostInfo {
    /// Reads the host; `node_ip` overrides the detected internal IP, `toward` is an
    /// address (host or IP, port optional) whose route picks the interface otherwise.
    pub async fn detect(node_ip: Option<String>, toward: Option<String>) -> HostInfo {
        let blocking = tokio::task::spawn_blocking(move || detect_blocking(node_ip, toward));
        match blocking.await {
            Ok(info) => info,
            Err(_) => detect_fallback(),
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn detect_fallback() -> HostInfo {
    HostInfo {
        cpus: 1,
        memory_bytes: 0,
        hostname: "localhost".to_owned(),
        internal_ip: "127.0.0.1".to_owned(),
        kernel_version: String::new(),
        os_image: String::new(),
        machine_id: String::new(),
        boot_id: String::new(),
        architecture: architecture().to_owned(),
    }
}

fn detect_blocking(node_ip: Option<String>, toward: Option<String>) -> HostInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or_else(|_| cpus_from_cpuinfo(&read("/proc/cpuinfo")).max(1));
    let hostname = Some(read("/proc/sys/kernel/hostname"))
        .filter(|h| !h.is_empty())
        .or_else(|| Some(read("/etc/hostname")).filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned());
    HostInfo {
        cpus,
        memory_bytes: mem_total(&read("/proc/meminfo")).unwrap_or(0),
        hostname,
        internal_ip: node_ip.unwrap_or_else(|| route_ip(toward.as_deref())),
        kernel_version: read("/proc/sys/kernel/osrelease"),
        os_image: os_pretty_name(&read("/etc/os-release")),
        machine_id: read("/etc/machine-id"),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        architecture: architecture().to_owned(),
    }
}

fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The local address of the route toward `toward` (a UDP "connect" sends nothing).
fn route_ip(toward: Option<&str>) -> String {
    let target = toward
        .map(|t| {
            if t.contains(':') && !t.starts_with('[') && t.matches(':').count() == 1 {
                t.to_owned()
            } else {
                format!("{t}:443")
            }
        })
        .unwrap_or_else(|| "10.255.255.255:443".to_owned());
    let local =
        UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(&target).and_then(|()| s.local_addr()));
    match local.map(|a| a.ip()) {
        Ok(IpAddr::V4(ip)) if !ip.is_unspecified() => ip.to_string(),
        _ => "127.0.0.1".to_owned(),
    }
}

fn cpus_from_cpuinfo(text: &str) -> u64 {
    text.lines().filter(|l| l.starts_with("processor")).count() as u64
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn os_pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| "Linux".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_cpuinfo_are_parsed() {
        let meminfo = "MemTotal:       16314516 kB\nMemFree:         1021212 kB\n";
        assert_eq!(mem_total(meminfo), Some(16314516 * 1024));
        assert_eq!(cpus_from_cpuinfo("processor\t: 0\nx\nprocessor\t: 1\n"), 2);
        assert_eq!(
            os_pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12\"\n"),
            "Debian GNU/Linux 12"
        );
    }
}
