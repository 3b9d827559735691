//! The ranges Services' values come from: the service CIDR and the node port range
//! (`--service-cluster-ip-range`, `--service-node-port-range`), and which values in them a
//! Service may hold.
//!
//! Owns parsing the flags and the usable values (not the network or broadcast address).
//! It must not read the store or choose values.

use std::net::Ipv4Addr;

use rafter_proto::{CidrError, Ipv4Cidr};

/// Why a range given to the master is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The service CIDR is not a CIDR.
    #[error("--service-cluster-ip-range: {0}")]
    Cidr(#[from] CidrError),
    /// The service CIDR leaves no address for Services besides the API Service's.
    #[error("--service-cluster-ip-range: {0} is too small; it needs a /30 or larger")]
    TooSmall(String),
    /// The node port range is not `LOW-HIGH` with 1 ≤ LOW ≤ HIGH ≤ 65535.
    #[error("--service-node-port-range: {0:?} is not LOW-HIGH with 1 <= LOW <= HIGH <= 65535")]
    Ports(String),
}

/// The ranges ClusterIPs and NodePorts come from (`--service-cluster-ip-range`,
/// `--service-node-port-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRanges {
    pub(super) cidr: Ipv4Cidr,
    pub(super) ports: (i32, i32),
}

impl Default for ServiceRanges {
    /// `10.96.0.0/12` and `30000-32767`, as Kubernetes.
    fn default() -> Self {
        ServiceRanges {
            cidr: Ipv4Cidr {
                address: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
                prefix: 12,
            },
            ports: (30000, 32767),
        }
    }
}

impl ServiceRanges {
    /// The ranges from their flags' text: `a.b.c.d/n` and `LOW-HIGH`.
    pub fn parse(cidr: &str, node_ports: &str) -> Result<ServiceRanges, RangeError> {
        let cidr = Ipv4Cidr::parse(cidr)?;
        if cidr.prefix > 30 {
            return Err(RangeError::TooSmall(cidr.to_string()));
        }
        let bad = || RangeError::Ports(node_ports.to_owned());
        let (low, high) = node_ports.trim().split_once('-').ok_or_else(bad)?;
        let low: i32 = low.trim().parse().map_err(|_| bad())?;
        let high: i32 = high.trim().parse().map_err(|_| bad())?;
        if !(1..=65535).contains(&low) || !(low..=65535).contains(&high) {
            return Err(bad());
        }
        Ok(ServiceRanges {
            cidr,
            ports: (low, high),
        })
    }

    /// The service CIDR.
    pub fn service_cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The node port range, inclusive.
    pub fn node_ports(&self) -> (i32, i32) {
        self.ports
    }

    /// The first address of the range, kept for the `kubernetes` Service in `default`.
    pub fn api_service_ip(&self) -> Ipv4Addr {
        self.cidr.nth(1).unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Whether `ip` may be a ClusterIP: in the range, neither its network nor its
    /// broadcast address.
    pub(super) fn ip_usable(&self, ip: Ipv4Addr) -> bool {
        self.cidr
            .offset_of(ip)
            .is_some_and(|offset| offset >= 1 && offset + 1 < self.cidr.size())
    }

    pub(super) fn port_usable(&self, port: i32) -> bool {
        (self.ports.0..=self.ports.1).contains(&port)
    }

    pub(super) fn ports_text(&self) -> String {
        format!("{}-{}", self.ports.0, self.ports.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse_with_the_flag_named() {
        let r = ServiceRanges::parse("10.96.0.0/12", "30000-32767").unwrap();
        assert_eq!(r, ServiceRanges::default());
        assert_eq!(r.api_service_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert!(r.ip_usable(Ipv4Addr::new(10, 96, 0, 1)));
        assert!(!r.ip_usable(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(!r.ip_usable(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(r.ip_usable(Ipv4Addr::new(10, 111, 255, 254)));
        let err = ServiceRanges::parse("10.96.0.1/12", "30000-32767").unwrap_err();
        assert!(
            err.to_string().contains("--service-cluster-ip-range"),
            "{err}"
        );
        let err = ServiceRanges::parse("10.96.0.0/31", "30000-32767").unwrap_err();
        assert!(err.to_string().contains("too small"), "{err}");
        for bad in ["30000", "32767-30000", "0-10", "1-70000", "a-b"] {
            let err = ServiceRanges::parse("10.96.0.0/12", bad).unwrap_err();
            assert!(
                err.to_string().contains("--service-node-port-range"),
                "{bad}: {err}"
            );
        }
    }
}
