//! `IntOrString`: a field that holds either an integer or a string (`targetPort: 8080`,
//! `targetPort: http`, `maxSurge: 25%`), as in Kubernetes.
//!
//! Owns the type's protobuf encoding (the `IntOrString` message of `meta.proto`) and its
//! serde form (a bare number or a bare string). It does not resolve percentages against a
//! total; callers do that with [`IntOrString::scaled_value`].

use std::fmt;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::DecodeError;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An integer or a string, written bare in manifests.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// A plain integer, such as a port number or a replica count.
    Int(i32),
    /// A string, such as a named port or a percentage ("25%").
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        IntOrString::Int(0)
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(v) => write!(f, "{v}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

/// Why an `IntOrString` could not be turned into a count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntOrStringError {
    /// The string is neither an integer nor a percentage such as "25%".
    #[error("{0:?} is neither an integer nor a percentage like \"25%\"")]
    NotAPercentage(String),
}

impl IntOrString {
    /// Resolves the value against `total`: integers as they are, "p%" as p% of `total`,
    /// rounded up or down as asked (Kubernetes rounds maxSurge up and maxUnavailable down).
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32, IntOrStringError> {
        match self {
            IntOrString::Int(v) => Ok(*v),
            IntOrString::String(s) => {
                let digits = s
                    .strip_suffix('%')
                    .ok_or_else(|| IntOrStringError::NotAPercentage(s.clone()))?;
                let percent: i64 = digits
                    .parse()
                    .map_err(|_| IntOrStringError::NotAPercentage(s.clone()))?;
                let product = percent * i64::from(total);
                let value = if round_up {
                    (product + 99).div_euclid(100)
                } else {
                    product.div_euclid(100)
                };
                Ok(i32::try_from(value).unwrap_or(i32::MAX))
            }
        }
    }
}

const TYPE_STRING: i32 = 1;

impl prost::Message for IntOrString {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            IntOrString::Int(v) => {
                if *v != 0 {
                    encoding::int32::encode(2, v, buf);
                }
            }
            IntOrString::String(s) => {
                encoding::int32::encode(1, &TYPE_STRING, buf);
                if !s.is_empty() {
                    encoding::string::encode(3, s, buf);
                }
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => {
                let mut kind = 0i32;
                encoding::int32::merge(wire_type, &mut kind, buf, ctx)?;
                if kind == TYPE_STRING && matches!(self, IntOrString::Int(_)) {
                    *self = IntOrString::String(String::new());
                }
                Ok(())
            }
            2 => {
                let mut value = 0i32;
                encoding::int32::merge(wire_type, &mut value, buf, ctx)?;
                *self = IntOrString::Int(value);
                Ok(())
            }
            3 => {
                let mut value = String::new();
                encoding::string::merge(wire_type, &mut value, buf, ctx)?;
                *self = IntOrString::String(value);
                Ok(())
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            IntOrString::Int(0) => 0,
            IntOrString::Int(v) => encoding::int32::encoded_len(2, v),
            IntOrString::String(s) if s.is_empty() => encoding::int32::encoded_len(1, &TYPE_STRING),
            IntOrString::String(s) => {
                encoding::int32::encoded_len(1, &TYPE_STRING) + encoding::string::encoded_len(3, s)
            }
        }
    }

    fn clear(&mut self) {
        *self = IntOrString::default();
    }
}

impl Serialize for IntOrString {
    fn serialize<S>(&self, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
    {
        match self {
            IntOrString::Int(v) => serializer.serialize_i32(*v),
            IntOrString::String(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D>(deserializer: D) -> Result<Self, D::Error>
    where
        D: Deserializer<'de>,
    {
        struct IntOrStringVisitor;

        impl<'de> Visitor<'de> for IntOrStringVisitor {
            type Value = IntOrString;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("{v} is out of range for a 32-bit integer")))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
                i32::try_from(v)
                    .map(IntOrString::Int)
                    .map_err(|_| E::custom(format!("{v} is out of range for a 32-bit integer")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrString, E> {
                Ok(IntOrString::String(v))
            }
        }

        deserializer.deserialize_any(IntOrStringVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn protobuf_round_trip_keeps_the_variant() {
        for value in [
            IntOrString::Int(0),
            IntOrString::Int(8080),
            IntOrString::Int(-3),
            IntOrString::String(String::new()),
            IntOrString::String("25%".into()),
        ] {
            let bytes = value.encode_to_vec();
            assert_eq!(bytes.len(), value.encoded_len());
            assert_eq!(IntOrString::decode(bytes.as_slice()).unwrap(), value);
        }
    }

    #[test]
    fn serde_accepts_numbers_and_strings() {
        let n: IntOrString = serde_json::from_str("8080").unwrap();
        assert_eq!(n, IntOrString::Int(8080));
        let s: IntOrString = serde_json::from_str("\"http\"").unwrap();
        assert_eq!(s, IntOrString::String("http".into()));
        assert!(serde_json::from_str::<IntOrString>("true").is_err());
        assert!(serde_json::from_str::<IntOrString>("4294967296").is_err());
    }

    #[test]
    fn percentages_scale_with_kubernetes_rounding() {
        let p = IntOrString::String("25%".into());
        assert_eq!(p.scaled_value(10, true).unwrap(), 3);
        assert_eq!(p.scaled_value(10, false).unwrap(), 2);
        assert_eq!(IntOrString::Int(4).scaled_value(10, false).unwrap(), 4);
        assert!(IntOrString::String("x".into())
            .scaled_value(10, true)
            .is_err());
    }
}
