//! Round trip of every kind: parse → serialise → parse gives an equal object, through
//! YAML, JSON and protobuf, for objects generated at random from the types themselves.
//!
//! The generator is a serde `Deserializer` that makes up its input: asked for a struct it
//! yields a random subset of the struct's own fields, asked for a string it yields an
//! awkward one (`"true"`, `"~"`, `"1e3"`, quotes, newlines, non-ASCII). So every field of
//! every kind is exercised without a hand-written strategy per type.

use proptest::prelude::*;
use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use crate::{parse_object, Kind, Object};

/// A small deterministic generator (xorshift64*), seeded by proptest.
struct Entropy(u64);

impl Entropy {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn string(&mut self) -> String {
        const AWKWARD: &[&str] = &[
            "",
            "true",
            "no",
            "null",
            "~",
            "1e3",
            "0x1F",
            "-",
            "- a",
            "a: b",
            "#x",
            "'q'",
            "\"dq\"",
            " lead",
            "trail ",
            "multi\nline",
            "tab\there",
            "ünïcødé",
            "25%",
            "500m",
            "1Gi",
            "{x}",
            "[y]",
            "*ref",
            "&anchor",
            "!tag",
            "@at",
            "`tick`",
            "010",
            "+1",
            ".5",
            "yes",
            "Off",
            "=",
            "%",
            "|",
            ">",
        ];
        if self.below(2) == 0 {
            AWKWARD[self.below(AWKWARD.len() as u64) as usize].to_owned()
        } else {
            let len = self.below(12);
            (0..len)
                .map(|_| (b'a' + self.below(26) as u8) as char)
                .collect()
        }
    }
}

struct Random<'a> {
    entropy: &'a mut Entropy,
    depth: u32,
}

impl<'a> Random<'a> {
    fn child(&mut self) -> Random<'_> {
        Random {
            entropy: self.entropy,
            depth: self.depth + 1,
        }
    }

    fn count(&mut self) -> usize {
        if self.depth > 7 {
            0
        } else {
            self.entropy.below(3) as usize
        }
    }
}

impl<'de> Deserializer<'de> for Random<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.entropy.below(2) == 0 {
            visitor.visit_i64(self.entropy.below(70_000) as i64)
        } else {
            visitor.visit_string(self.entropy.string())
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_bool(self.entropy.below(2) == 0)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_i32(self.entropy.next() as i32)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_i64(self.entropy.next() as i64)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_u32(self.entropy.next() as u32)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_u64(self.entropy.next() >> 1)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.entropy.string())
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(self.entropy.string())
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.depth > 7 || self.entropy.below(3) == 0 {
            visitor.visit_none()
        } else {
            visitor.visit_some(self.child())
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        let remaining = self.count();
        visitor.visit_seq(Elements {
            random: self,
            remaining,
        })
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Self::Error> {
        let remaining = self.count();
        visitor.visit_map(Entries {
            random: self,
            remaining,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let chosen = fields
            .iter()
            .copied()
            .filter(|_| self.entropy.below(3) != 0)
            .collect();
        visitor.visit_map(Fields {
            random: self,
            fields: chosen,
            next: 0,
        })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i128 u8 u16 u128 f32 f64 char bytes byte_buf unit unit_struct newtype_struct
        tuple tuple_struct enum identifier ignored_any
    }
}

struct Elements<'a> {
    random: Random<'a>,
    remaining: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = de::value::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        seed.deserialize(self.random.child()).map(Some)
    }
}

struct Entries<'a> {
    random: Random<'a>,
    remaining: usize,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        // Distinct keys, so a map keeps every entry it is given.
        let key = format!("{}{}", self.random.entropy.string(), self.remaining);
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        seed.deserialize(self.random.child())
    }
}

struct Fields<'a> {
    random: Random<'a>,
    fields: Vec<&'static str>,
    next: usize,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let key: de::value::StrDeserializer<'_, de::value::Error> = field.into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        seed.deserialize(self.random.child())
    }
}

pub(crate) fn random_object(kind: Kind, seed: u64) -> Object {
    // splitmix64 of the seed, so small seeds still start well mixed.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let mut entropy = Entropy((z ^ (z >> 31)) | 1);
    let random = Random {
        entropy: &mut entropy,
        depth: 0,
    };
    let mut object =
        Object::deserialize_kind(kind, random).unwrap_or_else(|e| panic!("{kind}: {e}"));
    object.set_type_meta();
    object
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_kind_survives_yaml_json_and_protobuf_round_trips(seed in any::<u64>()) {
        for kind in Kind::all() {
            let object = random_object(kind, seed ^ (kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));

            let yaml = object.to_yaml().unwrap();
            let from_yaml = parse_object(&yaml, "yaml").unwrap_or_else(|e| panic!("{kind}: {e}\n{yaml}"));
            prop_assert_eq!(&from_yaml, &object, "YAML round trip of {}:\n{}", kind, yaml);

            let json = serde_json::to_string(&object.to_json_value().unwrap()).unwrap();
            let from_json = parse_object(&json, "json").unwrap_or_else(|e| panic!("{kind}: {e}\n{json}"));
            prop_assert_eq!(&from_json, &object, "JSON round trip of {}", kind);

            let bytes = object.encode_to_vec();
            prop_assert_eq!(&Object::decode(kind, &bytes).unwrap(), &object, "protobuf round trip of {}", kind);
        }
    }
}

#[test]
fn the_generator_fills_nested_fields() {
    // Guards the generator itself: if it stopped producing content, the round trip above
    // would pass vacuously.
    let filled = (0..32u64)
        .map(|seed| random_object(Kind::Pod, seed).encode_to_vec().len())
        .filter(|len| *len > 200)
        .count();
    assert!(
        filled > 8,
        "only {filled} of 32 random pods had real content"
    );
}
