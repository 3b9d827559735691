//! What several fault tests share: the client library connected to a test cluster, and a
//! listing through one master's API.

use api_gateway::client::{Client, ResolvedConfig};
use chaos_tests::{AdminClient, Cluster};
use rafter_proto::{api, Object};

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

/// Every object of `kind` in the default namespace as the master behind `client` lists it;
/// `None` if the call fails (a dead or leaderless master), so callers can poll.
pub async fn list_default(client: &mut AdminClient, kind: &str) -> Option<Vec<Object>> {
    let list = client
        .list(api::ListRequest {
            kind: kind.to_owned(),
            namespace: "default".to_owned(),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    Some(
        list.items
            .into_iter()
            .filter_map(|o| Object::try_from(o).ok())
            .collect(),
    )
}
