//! Tests of [`StringMap`]: it behaves as a `BTreeMap` of strings would, and its fields encode
//! and decode byte for byte as prost's `BTreeMap` fields do.

use std::collections::BTreeMap;

use proptest::prelude::*;
use prost::Message;

use crate::v1::{ObjectMeta, ResourceRequirements};
use crate::StringMap;

/// `ObjectMeta`'s map fields as prost derives them for a `BTreeMap`: the reference.
#[derive(Clone, PartialEq, prost::Message)]
struct ReferenceMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(btree_map = "string, string", tag = "10")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "11")]
    annotations: BTreeMap<String, String>,
}

fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    // Short keys from a small alphabet, so that keys repeat; empty keys and values too.
    prop::collection::vec(("[ab.-]{0,3}", "[xy]{0,2}"), 0..12)
}

proptest! {
    #[test]
    fn encodes_as_prost_encodes_a_btree_map(labels in pairs(), annotations in pairs()) {
        let reference = ReferenceMeta {
            name: "n".to_owned(),
            labels: labels.iter().cloned().collect(),
            annotations: annotations.iter().cloned().collect(),
        };
        let meta = ObjectMeta {
            name: "n".to_owned(),
            labels: labels.iter().cloned().collect(),
            annotations: annotations.iter().cloned().collect(),
            ..Default::default()
        };
        prop_assert_eq!(meta.encoded_len(), reference.encoded_len());
        prop_assert_eq!(meta.encode_to_vec(), reference.encode_to_vec());
        prop_assert!(meta.labels == reference.labels);
    }

    #[test]
    fn decodes_entries_in_any_order_as_prost_does(labels in pairs()) {
        // One message per entry, concatenated: the entries arrive in the given order,
        // unsorted and with repeated keys, as another client might send them.
        let mut bytes = Vec::new();
        for (key, value) in &labels {
            let one = ReferenceMeta {
                labels: BTreeMap::from([(key.clone(), value.clone())]),
                ..Default::default()
            };
            one.encode(&mut bytes).unwrap();
        }
        let reference = ReferenceMeta::decode(bytes.as_slice()).unwrap();
        let meta = ObjectMeta::decode(bytes.as_slice()).unwrap();
        prop_assert!(meta.labels == reference.labels);
        prop_assert!(meta.labels.keys().zip(meta.labels.keys().skip(1)).all(|(a, b)| a < b));
    }

    #[test]
    fn inserts_and_removes_as_a_btree_map_does(
        ops in prop::collection::vec((any::<bool>(), "[abc]{1,2}", "[xy]{0,2}"), 0..40),
    ) {
        let mut map = StringMap::new();
        let mut reference = BTreeMap::new();
        for (insert, key, value) in ops {
            if insert {
                prop_assert_eq!(
                    map.insert(key.clone(), value.clone()),
                    reference.insert(key, value)
                );
            } else {
                prop_assert_eq!(map.remove(&key), reference.remove(&key));
            }
            prop_assert!(map == reference);
            prop_assert_eq!(map.len(), reference.len());
        }
    }
}

#[test]
fn collecting_keeps_the_later_value_of_a_repeated_key() {
    let map: StringMap = [("b", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("c", "5")]
        .into_iter()
        .collect();
    let got: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, [("a", "4"), ("b", "3"), ("c", "5")]);
}

#[test]
fn entry_fills_only_a_missing_key() {
    let mut map = StringMap::from([("cpu", "1")]);
    map.entry("cpu".to_owned())
        .or_insert_with(|| "2".to_owned());
    map.entry("memory".to_owned())
        .or_insert_with(|| "1Gi".to_owned());
    *map.entry("cpu".to_owned()).or_default() += "00m";
    map.entry("gpu".to_owned()).and_modify(|v| v.push('!'));
    assert_eq!(map, StringMap::from([("cpu", "100m"), ("memory", "1Gi")]));
    assert_eq!(map["memory"], "1Gi");
    assert!(map.get("gpu").is_none());
}

#[test]
fn json_is_an_object_in_key_order() {
    let requirements: ResourceRequirements =
        serde_json::from_str(r#"{"requests": {"memory": "64Mi", "cpu": 1}}"#).unwrap();
    assert_eq!(
        requirements.requests,
        StringMap::from([("cpu", "1"), ("memory", "64Mi")])
    );
    let meta: ObjectMeta =
        serde_json::from_str(r#"{"labels": {"z": "1", "a": "2", "z": "3"}}"#).unwrap();
    assert_eq!(meta.labels, StringMap::from([("a", "2"), ("z", "3")]));
    assert_eq!(
        serde_json::to_string(&meta).unwrap(),
        r#"{"labels":{"a":"2","z":"3"}}"#
    );
    let err = serde_json::from_str::<ObjectMeta>(r#"{"labels": {"a": 1}}"#).unwrap_err();
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn debug_shows_a_map() {
    let map = StringMap::from([("b", "2"), ("a", "1")]);
    assert_eq!(format!("{map:?}"), r#"{"a": "1", "b": "2"}"#);
}
