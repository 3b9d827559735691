//! The DNS server's zone kept current: a sink of the agent's Service watch that rebuilds
//! the [`ClusterZone`] from every Service and Endpoints after each burst of changes and
//! swaps it in whole. Owns nothing else; it must not serve queries (the server does).

use async_trait::async_trait;

use super::server::ZoneHandle;
use super::zone::ClusterZone;
use crate::proxy::ServiceState;
use crate::service_watch::ServiceSink;

/// Rebuilds the zone of `domain` into `zone` on every change.
pub(crate) struct ZoneFeed {
    pub(crate) domain: String,
    pub(crate) zone: ZoneHandle,
}

#[async_trait]
impl ServiceSink for ZoneFeed {
    fn name(&self) -> &'static str {
        "dns"
    }

    async fn sync(&mut self, state: &ServiceState) -> Result<(), String> {
        let zone = ClusterZone::build(&self.domain, state.services.values(), &state.endpoints)
            .map_err(|e| e.to_string())?;
        self.zone.replace(zone);
        Ok(())
    }

    async fn stop(&mut self) {}
}
