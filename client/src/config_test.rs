use base64::Engine;

use super::*;

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn sample() -> String {
    format!(
        "apiVersion: v1
kind: Config
current-context: admin@dev
clusters:
- name: dev
  cluster:
    servers: [https://127.0.0.1:6443, 'https://127.0.0.1:6444/']
    server: https://127.0.0.1:6445
    certificate-authority-data: {}
- name: local
  cluster:
    server: 127.0.0.1:7000
    insecure: true
users:
- name: admin
  user:
    token: s3cr3t
- name: node
  user:
    client-certificate-data: {}
    client-key-data: {}
contexts:
- name: admin@dev
  context: {{cluster: dev, user: admin}}
- name: node@dev
  context: {{cluster: dev, user: node, namespace: kube-system}}
- name: local
  context: {{cluster: local, user: admin}}
",
        b64(CA),
        b64(CA),
        b64("-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n")
    )
}

#[test]
fn the_current_context_resolves_to_every_master_the_ca_and_the_token() {
    let config = ClientConfig::parse(&sample()).unwrap();
    let resolved = config.resolve(None).unwrap();
    assert_eq!(resolved.context, "admin@dev");
    assert_eq!(
        resolved.endpoints,
        [
            "https://127.0.0.1:6443",
            "https://127.0.0.1:6444",
            "https://127.0.0.1:6445"
        ]
    );
    assert_eq!(resolved.ca_pem.as_deref(), Some(CA));
    assert_eq!(resolved.token.as_deref(), Some("s3cr3t"));
    assert_eq!(resolved.namespace, DEFAULT_NAMESPACE);
    assert!(
        !format!("{resolved:?}").contains("s3cr3t"),
        "debug output redacts the token"
    );
}

#[test]
fn a_named_context_resolves_its_certificate_and_namespace() {
    let config = ClientConfig::parse(&sample()).unwrap();
    let resolved = config.resolve(Some("node@dev")).unwrap();
    assert_eq!(resolved.namespace, "kube-system");
    assert!(resolved.token.is_none());
    let identity = resolved.identity.unwrap();
    assert_eq!(identity.cert_pem, CA);
    assert!(identity.key_pem.contains("PRIVATE KEY"));
}

#[test]
fn an_insecure_cluster_is_plaintext_without_a_ca() {
    let config = ClientConfig::parse(&sample()).unwrap();
    let resolved = config.resolve(Some("local")).unwrap();
    assert!(resolved.insecure);
    assert_eq!(resolved.endpoints, ["http://127.0.0.1:7000"]);
    assert!(resolved.ca_pem.is_none());
}

#[test]
fn missing_pieces_are_named() {
    let mut config = ClientConfig::parse(&sample()).unwrap();
    let error = config.resolve(Some("nope")).unwrap_err().to_string();
    assert!(error.contains("context \"nope\" is not defined"), "{error}");
    assert!(error.contains("admin@dev, node@dev, local"), "{error}");

    config.current_context.clear();
    let error = config.resolve(None).unwrap_err().to_string();
    assert!(error.contains("use-context"), "{error}");

    config.users[1].user.client_key_data = None;
    let error = config.resolve(Some("node@dev")).unwrap_err().to_string();
    assert!(error.contains("user \"node\""), "{error}");
    assert!(error.contains("client-key"), "{error}");

    config.clusters[0].cluster.certificate_authority_data = None;
    let error = config.resolve(Some("admin@dev")).unwrap_err().to_string();
    assert!(
        error.contains("cluster \"dev\" has neither certificate-authority"),
        "{error}"
    );

    config.clusters[0].cluster.servers.clear();
    config.clusters[0].cluster.server = None;
    let error = config.resolve(Some("admin@dev")).unwrap_err().to_string();
    assert!(error.contains("cluster \"dev\" has no servers"), "{error}");
}

#[test]
fn plaintext_servers_need_the_insecure_flag() {
    let mut config = ClientConfig::parse(&sample()).unwrap();
    config.clusters[0].cluster.servers = vec!["http://127.0.0.1:6443".into()];
    let error = config.resolve(None).unwrap_err().to_string();
    assert!(error.contains("insecure: true"), "{error}");
}

#[test]
fn a_file_that_is_not_a_client_config_is_refused_with_its_location() {
    let error = ClientConfig::parse("kind: Pod\n").unwrap_err();
    assert!(error.contains("kind: Config"), "{error}");
    let error = ClientConfig::parse("clusters: {a: 1}\n").unwrap_err();
    assert!(error.contains("line"), "{error}");
}

#[test]
fn a_missing_ca_file_is_named_relative_to_the_config_folder() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("config");
    let mut config = ClientConfig::parse(&sample()).unwrap();
    config.clusters[0].cluster.certificate_authority_data = None;
    config.clusters[0].cluster.certificate_authority = Some("pki/ca.crt".into());
    config.save(&path).unwrap();
    let error = ResolvedConfig::load(Some(&path), None)
        .unwrap_err()
        .to_string();
    let ca_path = folder.path().join("pki/ca.crt");
    assert!(
        error.contains(&ca_path.display().to_string()),
        "the error names the CA file: {error}"
    );
    assert!(
        error.contains(&path.display().to_string()),
        "and the config: {error}"
    );
    std::fs::create_dir(folder.path().join("pki")).unwrap();
    std::fs::write(&ca_path, CA).unwrap();
    let resolved = ResolvedConfig::load(Some(&path), None).unwrap();
    assert_eq!(resolved.ca_pem.as_deref(), Some(CA));
}

#[test]
fn saving_writes_a_private_file_that_loads_back_the_same() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("nested").join("config");
    let mut config = ClientConfig::parse(&sample()).unwrap();
    config.use_context("node@dev").unwrap();
    config.set_namespace("node@dev", "web").unwrap();
    config.save(&path).unwrap();
    let loaded = ClientConfig::load(&path).unwrap();
    assert_eq!(loaded, config);
    assert_eq!(loaded.path(), Some(path.as_path()));
    assert_eq!(loaded.resolve(None).unwrap().namespace, "web");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn using_an_undefined_context_changes_nothing() {
    let mut config = ClientConfig::parse(&sample()).unwrap();
    assert!(config.use_context("ghost").is_err());
    assert!(config.set_namespace("ghost", "x").is_err());
    assert_eq!(config.current_context, "admin@dev");
}

#[test]
fn minified_keeps_the_current_context_and_redacted_hides_secrets() {
    let config = ClientConfig::parse(&sample()).unwrap();
    let mini = config.minified().unwrap();
    assert_eq!(mini.contexts.len(), 1);
    assert_eq!(mini.clusters.len(), 1);
    assert_eq!(mini.users.len(), 1);
    let shown = config.redacted().to_yaml().unwrap();
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains(REDACTED), "{shown}");
    assert!(shown.contains(DATA_OMITTED), "{shown}");
    assert!(!shown.contains(&b64(CA)), "{shown}");
}

#[test]
fn an_explicit_path_wins_over_the_environment() {
    let explicit = PathBuf::from("/tmp/explicit");
    assert_eq!(ClientConfig::locate(Some(&explicit)).unwrap(), explicit);
}

#[test]
fn a_kubeconfig_names_each_clusters_first_rest_endpoint_as_its_only_server() {
    let mut config = ClientConfig::parse(&sample()).unwrap().minified().unwrap();
    let refused = config.to_kubeconfig().unwrap_err().to_string();
    assert!(
        refused.contains("\"dev\"") && refused.contains("rest-servers"),
        "{refused}"
    );
    config.clusters[0].cluster.rest_servers = vec![
        "https://127.0.0.1:8443".to_owned(),
        "https://127.0.0.1:8444".to_owned(),
    ];
    let kubeconfig = config.to_kubeconfig().unwrap();
    let cluster = &kubeconfig.clusters[0].cluster;
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:8443"));
    assert!(cluster.servers.is_empty() && cluster.rest_servers.is_empty());
    let yaml = kubeconfig.to_yaml().unwrap();
    assert!(!yaml.contains("servers"), "{yaml}");
    assert!(yaml.contains("certificate-authority-data"), "{yaml}");
}
