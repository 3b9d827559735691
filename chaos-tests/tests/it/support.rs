//! What several fault tests share: the client library connected to a test cluster.

use api_gateway::client::{Client, ResolvedConfig};
use chaos_tests::Cluster;

/// The client library with the admin's config listing every master of `cluster`. The
/// config lives in the returned directory, which must outlive the client.
pub async fn library_client(cluster: &Cluster) -> (Client, tempfile::TempDir) {
    let work = tempfile::tempdir().expect("tempdir");
    let config_path = work.path().join("config");
    cluster
        .write_client_config(&config_path)
        .expect("client config written");
    let config = ResolvedConfig::load(Some(&config_path), None).expect("client config read");
    let client = Client::connect(config).await.expect("client connects");
    (client, work)
}
