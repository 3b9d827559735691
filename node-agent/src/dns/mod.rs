//! Cluster DNS: names of Services and pods in the cluster domain answered on the node from
//! what the agent watches, everything else forwarded to the host's resolvers.
//!
//! | module | owns |
//! |---|---|
//! | `zone` | [`ClusterZone`]: the records of the cluster domain built from Services and Endpoints, and lookups in them |
//! | `feed` | the zone rebuilt from the agent's Service watch after each change |
//! | `resolv` | a pod's resolver configuration from its `dnsPolicy` and `dnsConfig` ([`pod_dns`]) |
//! | `server` | [`DnsServer`]: UDP and TCP serving with hickory, answers from a [`ZoneHandle`], forwarding |

mod feed;
mod resolv;
mod server;
mod zone;

pub(crate) use feed::ZoneFeed;
pub use resolv::{pod_dns, ClusterDns, DnsSettings};
pub use server::{DnsError, DnsServer, Upstream, ZoneHandle};
pub use zone::{Answer, ClusterZone, DomainError, TTL};
