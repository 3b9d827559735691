use base64::Engine;
use rafter_proto::Kind;

use super::{EncryptionConfig, EncryptionError, Transformer};

const KEY: &[u8] = b"/registry/core/secrets/default/db";

fn b64(bytes: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A configuration for secrets with `providers` given as YAML list items.
fn config(providers: &str) -> Transformer {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{providers}"
    );
    Transformer::new(&EncryptionConfig::parse(&text).unwrap()).unwrap()
}

fn aes(keys: &[(&str, &[u8; 32])]) -> String {
    let mut text = "      - aesgcm:\n          keys:\n".to_owned();
    for (name, secret) in keys {
        text.push_str(&format!(
            "            - name: {name}\n              secret: {}\n",
            b64(secret)
        ));
    }
    text
}

const IDENTITY: &str = "      - identity: {}\n";

#[test]
fn aesgcm_round_trips_and_stores_no_plaintext() {
    let k1 = [1u8; 32];
    let t = config(&aes(&[("k1", &k1)]));
    let stored = t
        .encrypt(Kind::Secret, KEY, b"hunter2-canary".to_vec())
        .unwrap();
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    assert!(!stored.windows(14).any(|w| w == b"hunter2-canary"));
    assert_eq!(
        &*t.decrypt(Kind::Secret, KEY, &stored).unwrap(),
        b"hunter2-canary"
    );
}

#[test]
fn each_write_takes_a_fresh_nonce() {
    let t = config(&aes(&[("k1", &[1u8; 32])]));
    let a = t.encrypt(Kind::Secret, KEY, b"same".to_vec()).unwrap();
    let b = t.encrypt(Kind::Secret, KEY, b"same".to_vec()).unwrap();
    assert_ne!(a, b);
}

#[test]
fn rotation_reads_the_old_key_and_writes_the_new_one() {
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    let old = config(&aes(&[("k1", &k1)]));
    let written = old.encrypt(Kind::Secret, KEY, b"v".to_vec()).unwrap();
    let rotated = config(&aes(&[("k2", &k2), ("k1", &k1)]));
    assert_eq!(
        &*rotated.decrypt(Kind::Secret, KEY, &written).unwrap(),
        b"v"
    );
    let rewritten = rotated.encrypt(Kind::Secret, KEY, b"v".to_vec()).unwrap();
    assert!(rewritten.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
    assert!(rotated.is_stale(Kind::Secret, &written));
    assert!(!rotated.is_stale(Kind::Secret, &rewritten));
    assert!(rotated.is_stale(Kind::Secret, b"plaintext"));
    assert!(Transformer::identity().is_stale(Kind::Secret, &written));
    assert!(!Transformer::identity().is_stale(Kind::Secret, b"plaintext"));
    // The old key also works as a second provider.
    let two_providers = config(&format!("{}{}", aes(&[("k2", &k2)]), aes(&[("k1", &k1)])));
    assert_eq!(
        &*two_providers.decrypt(Kind::Secret, KEY, &written).unwrap(),
        b"v"
    );
}

#[test]
fn a_value_under_a_missing_key_is_an_error_naming_the_key() {
    let written = config(&aes(&[("k1", &[1u8; 32])]))
        .encrypt(Kind::Secret, KEY, b"v".to_vec())
        .unwrap();
    let without = config(&format!("{}{IDENTITY}", aes(&[("k2", &[2u8; 32])])));
    let err = without.decrypt(Kind::Secret, KEY, &written).unwrap_err();
    assert!(
        matches!(&err, EncryptionError::MissingKey { key, .. } if key == "k1"),
        "{err}"
    );
    assert!(err.to_string().contains("\"k1\""), "{err}");
    // No configuration at all still refuses to hand out ciphertext.
    let err = Transformer::identity()
        .decrypt(Kind::Secret, KEY, &written)
        .unwrap_err();
    assert!(matches!(err, EncryptionError::MissingKey { .. }));
}

#[test]
fn a_different_key_under_the_same_name_does_not_decrypt() {
    let written = config(&aes(&[("k1", &[1u8; 32])]))
        .encrypt(Kind::Secret, KEY, b"v".to_vec())
        .unwrap();
    let other = config(&aes(&[("k1", &[9u8; 32])]));
    assert!(matches!(
        other.decrypt(Kind::Secret, KEY, &written),
        Err(EncryptionError::Decrypt { .. })
    ));
}

#[test]
fn a_value_moved_to_another_key_does_not_decrypt() {
    let t = config(&aes(&[("k1", &[1u8; 32])]));
    let written = t.encrypt(Kind::Secret, KEY, b"v".to_vec()).unwrap();
    assert!(t
        .decrypt(
            Kind::Secret,
            b"/registry/core/secrets/default/other",
            &written
        )
        .is_err());
}

#[test]
fn identity_first_writes_plaintext_and_reads_encrypted_values() {
    let k1 = [1u8; 32];
    let written = config(&aes(&[("k1", &k1)]))
        .encrypt(Kind::Secret, KEY, b"v".to_vec())
        .unwrap();
    let t = config(&format!("{IDENTITY}{}", aes(&[("k1", &k1)])));
    assert!(!t.encrypts(Kind::Secret));
    assert_eq!(&*t.decrypt(Kind::Secret, KEY, &written).unwrap(), b"v");
    assert_eq!(t.encrypt(Kind::Secret, KEY, b"p".to_vec()).unwrap(), b"p");
    assert_eq!(&*t.decrypt(Kind::Secret, KEY, b"p").unwrap(), b"p");
}

#[test]
fn plaintext_is_refused_without_identity() {
    let t = config(&aes(&[("k1", &[1u8; 32])]));
    assert!(matches!(
        t.decrypt(Kind::Secret, KEY, b"plain"),
        Err(EncryptionError::NotEncrypted { .. })
    ));
    // Kinds the configuration does not name are stored as they are.
    assert!(!t.encrypts(Kind::ConfigMap));
    assert_eq!(
        t.encrypt(Kind::ConfigMap, KEY, b"p".to_vec()).unwrap(),
        b"p"
    );
}

#[test]
fn configmaps_are_encrypted_when_configured() {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets, configmaps]\n    providers:\n{}",
        aes(&[("k1", &[1u8; 32])])
    );
    let t = Transformer::new(&EncryptionConfig::parse(&text).unwrap()).unwrap();
    assert!(t.encrypts(Kind::Secret) && t.encrypts(Kind::ConfigMap));
    assert!(!t.encrypts(Kind::Pod));
}

#[test]
fn bad_configurations_are_refused_with_the_field() {
    let head = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n";
    let short = format!(
        "{head}      - aesgcm:\n          keys:\n            - name: k\n              secret: {}\n",
        base64::engine::general_purpose::STANDARD.encode([0u8; 16])
    );
    let err = EncryptionConfig::parse(&short).unwrap_err().to_string();
    assert!(
        err.contains("providers[0].aesgcm.keys[0].secret") && err.contains("32 bytes"),
        "{err}"
    );
    let unknown = format!("{head}      - aescbc:\n          keys: []\n");
    assert!(EncryptionConfig::parse(&unknown).is_err());
    let wrong_kind = "apiVersion: v1\nkind: ConfigMap\n";
    assert!(EncryptionConfig::parse(wrong_kind).is_err());
    let typo = head.replace("[secrets]", "[secretz]") + IDENTITY;
    let config = EncryptionConfig::parse(&typo).unwrap();
    assert!(Transformer::new(&config)
        .unwrap_err()
        .to_string()
        .contains("secretz"));
}

#[test]
fn the_generated_configuration_encrypts_secrets() {
    let text = EncryptionConfig::generate_yaml(&["secrets"], "key1", &super::generate_key());
    let t = Transformer::new(&EncryptionConfig::parse(&text).unwrap()).unwrap();
    assert!(t.encrypts(Kind::Secret));
    assert_eq!(
        &*t.decrypt(Kind::Secret, KEY, b"old plaintext").unwrap(),
        b"old plaintext"
    );
}
