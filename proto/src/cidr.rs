//! IPv4 networks written `a.b.c.d/n` ([`Ipv4Cidr`]): the cluster CIDR nodes' pod CIDRs are
//! cut from and the service CIDR ClusterIPs are allocated from.
//!
//! Owns parsing (host bits must be zero), membership and address arithmetic. It must not
//! decide what a range is used for or allocate anything.

use std::fmt;
use std::net::Ipv4Addr;

/// Why a CIDR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/n` with an IPv4 address and 0 ≤ n ≤ 32.
    #[error("{0:?} is not an IPv4 CIDR (a.b.c.d/n)")]
    Malformed(String),
    /// Bits set below the prefix (`10.244.1.0/16`).
    #[error("{cidr} has host bits set; the network is {network}")]
    HostBits {
        /// As given.
        cidr: String,
        /// What it should be.
        network: String,
    },
}

/// An IPv4 network `address/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    /// The network address (host bits zero).
    pub address: u32,
    /// The prefix length.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// The netmask of a `/prefix` as a number.
    pub fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        }
    }

    /// Parses `a.b.c.d/n`; host bits must be zero.
    pub fn parse(text: &str) -> Result<Ipv4Cidr, CidrError> {
        let malformed = || CidrError::Malformed(text.to_owned());
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(malformed)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| malformed())?;
        let prefix: u8 = prefix.parse().map_err(|_| malformed())?;
        if prefix > 32 {
            return Err(malformed());
        }
        let address = u32::from(addr);
        let network = address & Ipv4Cidr::mask(prefix);
        if network != address {
            return Err(CidrError::HostBits {
                cidr: text.to_owned(),
                network: Ipv4Cidr {
                    address: network,
                    prefix,
                }
                .to_string(),
            });
        }
        Ok(Ipv4Cidr { address, prefix })
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Ipv4Cidr::mask(self.prefix) == self.address
    }

    /// How many addresses the network spans (network and broadcast addresses included).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix.min(32)))
    }

    /// The `offset`th address of the network (0 is the network address itself).
    pub fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        if offset >= self.size() {
            return None;
        }
        let address = u64::from(self.address) + offset;
        Some(Ipv4Addr::from(u32::try_from(address).ok()?))
    }

    /// Whether the two networks share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        let mask = Ipv4Cidr::mask(self.prefix.min(other.prefix));
        self.address & mask == other.address & mask
    }

    /// The offset of `ip` in this network, when it lies in it.
    pub fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        self.contains(ip)
            .then(|| u64::from(u32::from(ip) - self.address))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.address), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_networks_parse_and_overlap_is_a_shared_address() {
        let net = |t: &str| Ipv4Cidr::parse(t).unwrap();
        assert!(Ipv4Cidr::parse("10.244.1.5/24").is_err(), "host bits set");
        assert!(Ipv4Cidr::parse("10.244.1.0/33").is_err());
        assert!(Ipv4Cidr::parse("10.244.1.0").is_err());
        assert!(Ipv4Cidr::parse("fd00::/64").is_err());
        assert!(net("10.244.0.0/16").overlaps(&net("10.244.7.0/24")));
        assert!(net("10.244.7.0/24").overlaps(&net("10.244.0.0/16")));
        assert!(!net("10.244.1.0/24").overlaps(&net("10.244.2.0/24")));
    }

    #[test]
    fn cidrs_parse_refuse_host_bits_and_count_their_addresses() {
        let c = Ipv4Cidr::parse("10.96.0.0/12").unwrap();
        assert_eq!(c.to_string(), "10.96.0.0/12");
        assert_eq!(c.size(), 1 << 20);
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(c.nth((1 << 20) - 1), Some(Ipv4Addr::new(10, 111, 255, 255)));
        assert_eq!(c.nth(1 << 20), None);
        assert_eq!(c.offset_of(Ipv4Addr::new(10, 96, 1, 2)), Some(258));
        assert_eq!(c.offset_of(Ipv4Addr::new(10, 0, 0, 5)), None);
        assert!(c.contains(Ipv4Addr::new(10, 111, 0, 1)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 1)));
        assert!(matches!(
            Ipv4Cidr::parse("10.96.0.1/12"),
            Err(CidrError::HostBits { network, .. }) if network == "10.96.0.0/12"
        ));
        for bad in ["10.96.0.0", "10.300.0.0/16", "10.0.0.0/33", "x/8"] {
            assert!(
                matches!(Ipv4Cidr::parse(bad), Err(CidrError::Malformed(_))),
                "{bad}"
            );
        }
        let all = Ipv4Cidr::parse("0.0.0.0/0").unwrap();
        assert_eq!(all.size(), 1 << 32);
        assert!(all.contains(Ipv4Addr::new(255, 255, 255, 255)));
        let one = Ipv4Cidr::parse("192.168.1.7/32").unwrap();
        assert_eq!(one.size(), 1);
    }
}
