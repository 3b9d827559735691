//! The registry with an encryption configuration, on the in-memory store: what the store
//! holds for a Secret, and what a registry without the key says.

use std::sync::Arc;

use base64::Engine;
use futures::StreamExt;
use prost::Message;
use raft_store::kv::{KeyRange, RangeRequest};
use rafter_proto::{parse_object, Kind, ListOptions, Object, ReadConsistency, WatchEventType};

use super::{generate_key, EncryptionConfig, Transformer};
use crate::registry::{Registry, RegistryError};
use crate::store::KvStore;
use crate::testing::MemKv;

const CANARY: &str = "canary-3f9c1d-DB_PASSWORD";

fn transformer(keys: &[(&str, [u8; 32])]) -> Arc<Transformer> {
    let mut text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n".to_owned();
    for (name, secret) in keys {
        text.push_str(&format!(
            "            - name: {name}\n              secret: {}\n",
            base64::engine::general_purpose::STANDARD.encode(secret)
        ));
    }
    text.push_str("      - identity: {}\n");
    Arc::new(Transformer::new(&EncryptionConfig::parse(&text).unwrap()).unwrap())
}

fn secret(name: &str) -> Object {
    let value = base64::engine::general_purpose::STANDARD.encode(CANARY);
    parse_object(
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  annotations: {{note: {CANARY}}}\ndata:\n  password: {value}\n"),
        "test",
    )
    .unwrap()
}

async fn raw_values(store: &MemKv) -> Vec<(String, Vec<u8>)> {
    store
        .range(
            RangeRequest::new(KeyRange::prefix("/")),
            ReadConsistency::Linearizable,
        )
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), kv.value))
        .collect()
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_secret_is_stored_as_ciphertext_and_reads_back() {
    let store = Arc::new(MemKv::new().unwrap());
    let r = Registry::new(store.clone()).with_transformer(transformer(&[("k1", generate_key())]));
    let created = r.create(secret("db"), false).await.unwrap();
    let mut updated = created.clone();
    updated
        .metadata_mut()
        .labels
        .insert("tier".into(), "db".into());
    r.update(updated, crate::registry::Subresource::Main, false)
        .await
        .unwrap();

    let raw = raw_values(&store).await;
    let (_, value) = raw
        .iter()
        .find(|(k, _)| k == "/registry/core/secrets/default/db")
        .unwrap();
    assert!(value.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(CANARY);
    for (key, value) in &raw {
        assert!(!holds(value, CANARY), "{key} holds the canary in clear");
        assert!(!holds(value, &encoded), "{key} holds the canary's base64");
    }

    let read = r
        .get(Kind::Secret, "default", "db", ReadConsistency::Linearizable)
        .await
        .unwrap();
    let Object::Secret(s) = &read else { panic!() };
    assert_eq!(
        s.data.get("password"),
        Some(&base64::engine::general_purpose::STANDARD.encode(CANARY))
    );
    let listed = r.list(&ListOptions::all(Kind::Secret, None)).await.unwrap();
    assert_eq!(listed.items, vec![read.clone()]);
    // A list sent in wire form carries the plaintext the list decoded, not ciphertext.
    let encoded = r
        .list_encoded(&ListOptions::all(Kind::Secret, None))
        .await
        .unwrap();
    let items: Vec<Object> = encoded
        .items
        .iter()
        .map(|item| {
            let typed = rafter_proto::api::TypedObject::decode(item.as_bytes()).unwrap();
            Object::try_from(typed).unwrap()
        })
        .collect();
    assert_eq!(items, vec![read.clone()]);
    let mut watch = r
        .watch(ListOptions::all(Kind::Secret, None), None)
        .await
        .unwrap();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.event_type, WatchEventType::Added);
    assert_eq!(first.object, Some(read));
}

#[tokio::test]
async fn a_registry_without_the_key_names_it_and_serves_no_ciphertext() {
    let store = Arc::new(MemKv::new().unwrap());
    let k1 = generate_key();
    let writer = Registry::new(store.clone()).with_transformer(transformer(&[("k1", k1)]));
    writer.create(secret("db"), false).await.unwrap();

    for reader in [
        Registry::new(store.clone()),
        Registry::new(store.clone()).with_transformer(transformer(&[("k2", generate_key())])),
    ] {
        let err = reader
            .get(Kind::Secret, "default", "db", ReadConsistency::Linearizable)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Internal(_)), "{err}");
        assert!(err.to_string().contains("\"k1\""), "{err}");
        assert!(reader
            .list(&ListOptions::all(Kind::Secret, None))
            .await
            .is_err());
    }

    // Rotation: k2 first, k1 kept, a rewrite moves the value to k2, and then k1 can go.
    let k2 = generate_key();
    let rotated =
        Registry::new(store.clone()).with_transformer(transformer(&[("k2", k2), ("k1", k1)]));
    let read = rotated
        .get(Kind::Secret, "default", "db", ReadConsistency::Linearizable)
        .await
        .unwrap();
    rotated
        .update(read, crate::registry::Subresource::Main, false)
        .await
        .unwrap();
    let raw = raw_values(&store).await;
    let (_, value) = raw
        .iter()
        .find(|(k, _)| k == "/registry/core/secrets/default/db")
        .unwrap();
    assert!(value.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
    let only_k2 = Registry::new(store).with_transformer(transformer(&[("k2", k2)]));
    only_k2
        .get(Kind::Secret, "default", "db", ReadConsistency::Linearizable)
        .await
        .unwrap();
}
