//! serde glue for the generated types: which values are left out when serialising, and
//! quantity fields that manifests may write as numbers (`cpu: 1`, `storage: 5`).
//!
//! Owns nothing but (de)serialisation helpers named from `build.rs`; it does not
//! validate quantities (see `quantity`).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

/// True when `value` equals its type's default, so serialisation leaves it out.
pub(crate) fn is_default<T>(value: &T) -> bool
where
    T: Default + PartialEq,
{
    *value == T::default()
}

/// A quantity written as a string or as a number; numbers keep their YAML/JSON spelling.
struct QuantityText;

impl<'de> Visitor<'de> for QuantityText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a quantity such as \"500m\", \"1Gi\" or 2")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        if v.is_finite() {
            Ok(v.to_string())
        } else {
            Err(E::custom(format!("{v} is not a quantity")))
        }
    }
}

struct QuantityValue(String);

impl<'de> de::Deserialize<'de> for QuantityValue {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: Deserializer<'de>,
    {
        deserializer
            .deserialize_any(QuantityText)
            .map(QuantityValue)
    }
}

/// Deserialises one quantity written as a string or a number.
pub(crate) fn quantity_string<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_any(QuantityText)
}

/// Deserialises a map of resource name to quantity, values written as strings or numbers.
pub(crate) fn quantity_map<'de, D>(deserializer: D) -> Result<crate::StringMap, D::Error>
where
    D: Deserializer<'de>,
{
    struct QuantityMap;

    impl<'de> Visitor<'de> for QuantityMap {
        type Value = crate::StringMap;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of resource name to quantity")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(crate::StringMap::new())
        }

        fn visit_map<A>(self, mut map: A) -> Result<Self::Value, A::Error>
        where
            A: MapAccess<'de>,
        {
            let mut out = crate::StringMap::new();
            while let Some((key, QuantityValue(value))) =
                map.next_entry::<String, QuantityValue>()?
            {
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(QuantityMap)
}

/// A string field that holds JSON text and is a JSON value on the wire (a managed-fields
/// entry's `fieldsV1`). Text that is not JSON is written as a JSON string.
pub(crate) mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => value.serialize(serializer),
            Err(_) => serializer.serialize_str(text),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<String, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::Null => Ok(String::new()),
            value => Ok(value.to_string()),
        }
    }
}
