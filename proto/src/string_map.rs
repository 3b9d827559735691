//! [`StringMap`]: the API's `map<string, string>` fields (labels, annotations, resource
//! requests and limits, selectors, ConfigMap data ...) as one sorted vector of pairs.
//!
//! Owns the map type and the protobuf encoding of its fields. Caches hold every pod of a
//! cluster decoded, and a `BTreeMap` takes a 544-byte node for its first entry, whatever
//! its size; a pod's one label and two requests cost ~1.2 KB that way, against ~150 bytes
//! here. The API follows `BTreeMap`'s (sorted iteration, `get`, `insert`, `remove` ...),
//! so code reads the same; inserting out of order shifts the entries after the new one,
//! which the maps of this API (a handful of entries, decoded in order) never notice.
//!
//! The wire format is protobuf's map encoding, byte for byte what prost writes for a
//! `BTreeMap`: one length-delimited entry per pair, its key as field 1 and its value as
//! field 2, each left out when empty. Must not change the order or the bytes of an
//! encoding: the store compares encodings.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

/// A map of strings to strings, sorted by key, each key once.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StringMap {
    /// Sorted by key, no key twice.
    entries: Vec<(String, String)>,
}

impl StringMap {
    /// An empty map; allocates nothing.
    pub const fn new() -> Self {
        StringMap {
            entries: Vec::new(),
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Gives back the room decoding or inserting left unused.
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
    }

    fn position<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.entries
            .binary_search_by(|(k, _)| Borrow::<Q>::borrow(k).cmp(key))
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&String>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.position(key).ok()?;
        self.entries.get(at).map(|(_, v)| v)
    }

    /// The stored key and value of `key`.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&String, &String)>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.position(key).ok()?;
        self.entries.get(at).map(|(k, v)| (k, v))
    }

    /// The value of `key`, to change in place.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut String>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.position(key).ok()?;
        self.entries.get_mut(at).map(|(_, v)| v)
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.position(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: String, value: String) -> Option<String> {
        // Decoding and building in order append: check the end before searching.
        match self.entries.last_mut() {
            None => {
                self.entries.push((key, value));
                return None;
            }
            Some((last, _)) if *last < key => {
                self.entries.push((key, value));
                return None;
            }
            Some((last, old)) if *last == key => return Some(std::mem::replace(old, value)),
            Some(_) => {}
        }
        match self.position(key.as_str()) {
            Ok(at) => self
                .entries
                .get_mut(at)
                .map(|(_, old)| std::mem::replace(old, value)),
            Err(at) => {
                self.entries.insert(at, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<String>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.position(key).ok()?;
        Some(self.entries.remove(at).1)
    }

    /// Removes `key`; returns its key and value.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(String, String)>
    where
        String: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let at = self.position(key).ok()?;
        Some(self.entries.remove(at))
    }

    /// Keeps only the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &mut String) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// The place of `key` in the map, to read or fill in place.
    pub fn entry(&mut self, key: String) -> Entry<'_> {
        let at = self.position(key.as_str());
        Entry { map: self, key, at }
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The entries in key order, values changeable.
    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&String, &mut String)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in key order, changeable.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut String> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// The keys in order, taking the map.
    pub fn into_keys(self) -> impl DoubleEndedIterator<Item = String> {
        self.entries.into_iter().map(|(k, _)| k)
    }

    /// The values in key order, taking the map.
    pub fn into_values(self) -> impl DoubleEndedIterator<Item = String> {
        self.entries.into_iter().map(|(_, v)| v)
    }

    /// The first entry in key order.
    pub fn first_key_value(&self) -> Option<(&String, &String)> {
        self.entries.first().map(|(k, v)| (k, v))
    }

    /// The last entry in key order.
    pub fn last_key_value(&self) -> Option<(&String, &String)> {
        self.entries.last().map(|(k, v)| (k, v))
    }

    /// Moves every entry of `other` in, replacing values of keys both have.
    pub fn append(&mut self, other: &mut StringMap) {
        self.extend(std::mem::take(other));
    }
}

/// One key's place in a [`StringMap`], found once ([`StringMap::entry`]).
pub struct Entry<'a> {
    map: &'a mut StringMap,
    key: String,
    /// Where the key is (`Ok`) or would go (`Err`).
    at: Result<usize, usize>,
}

impl<'a> Entry<'a> {
    /// The key.
    pub fn key(&self) -> &String {
        &self.key
    }

    /// The value, inserting `default()` first if the key has none.
    pub fn or_insert_with(self, default: impl FnOnce() -> String) -> &'a mut String {
        let at = match self.at {
            Ok(at) => at,
            Err(at) => {
                self.map.entries.insert(at, (self.key, default()));
                at
            }
        };
        &mut self.map.entries[at].1
    }

    /// The value, inserting `default` first if the key has none.
    pub fn or_insert(self, default: String) -> &'a mut String {
        self.or_insert_with(|| default)
    }

    /// The value, inserting an empty one first if the key has none.
    pub fn or_default(self) -> &'a mut String {
        self.or_insert_with(String::new)
    }

    /// Changes the value in place if the key has one.
    pub fn and_modify(self, change: impl FnOnce(&mut String)) -> Self {
        if let Ok(at) = self.at {
            change(&mut self.map.entries[at].1);
        }
        self
    }
}

/// The entries of a [`StringMap`] in key order.
#[derive(Clone, Debug)]
pub struct Iter<'a>(std::slice::Iter<'a, (String, String)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a StringMap {
    type Item = (&'a String, &'a String);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for StringMap {
    type Item = (String, String);
    type IntoIter = std::vec::IntoIter<(String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl FromIterator<(String, String)> for StringMap {
    /// Keys given twice keep the later value, as `BTreeMap` does.
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut entries: Vec<(String, String)> = pairs.into_iter().collect();
        // Stable: among equal keys the later pair stays later.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        StringMap { entries }
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(pairs: I) -> Self {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl Extend<(String, String)> for StringMap {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, pairs: I) {
        for (k, v) in pairs {
            self.insert(k, v);
        }
    }
}

impl<'a> Extend<(&'a String, &'a String)> for StringMap {
    fn extend<I: IntoIterator<Item = (&'a String, &'a String)>>(&mut self, pairs: I) {
        for (k, v) in pairs {
            self.insert(k.clone(), v.clone());
        }
    }
}

impl<const N: usize> From<[(String, String); N]> for StringMap {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<const N: usize> From<[(&str, &str); N]> for StringMap {
    fn from(pairs: [(&str, &str); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl From<BTreeMap<String, String>> for StringMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique.
        StringMap {
            entries: map.into_iter().collect(),
        }
    }
}

impl From<StringMap> for BTreeMap<String, String> {
    fn from(map: StringMap) -> Self {
        map.entries.into_iter().collect()
    }
}

impl PartialEq<BTreeMap<String, String>> for StringMap {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<Q> std::ops::Index<&Q> for StringMap
where
    String: Borrow<Q>,
    Q: Ord + ?Sized,
{
    type Output = String;

    /// Panics when `key` has no value, as `BTreeMap`'s does.
    fn index(&self, key: &Q) -> &String {
        match self.get(key) {
            Some(value) => value,
            None => panic!("no entry found for key"),
        }
    }
}

impl fmt::Debug for StringMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for StringMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for StringMap {
    /// A JSON or YAML object of strings; a key given twice keeps the later value.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;

        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = StringMap;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<StringMap, A::Error> {
                let mut pairs = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(pair) = access.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(pairs.into_iter().collect())
            }
        }

        deserializer.deserialize_map(Pairs)
    }
}

/// The paths the derived `Message` impls of messages with string maps are generated
/// against (`#[prost(prost_path = ...)]`, set by `build.rs`): prost's own, except that a
/// map field's encoding works on a [`StringMap`].
pub mod prost {
    pub use ::prost::*;

    /// prost's encoding functions, with `btree_map` replaced.
    pub mod encoding {
        pub use ::prost::encoding::*;

        /// A `map<string, string>` field held in a [`StringMap`](crate::StringMap), encoded
        /// as prost encodes a `BTreeMap`.
        pub mod btree_map {
            use ::prost::bytes::{Buf, BufMut};
            use ::prost::encoding::{
                decode_key, encode_key, encode_varint, encoded_len_varint, key_len, merge_loop,
                skip_field, DecodeContext, WireType,
            };
            use ::prost::DecodeError;

            use crate::StringMap;

            /// The length of one entry's body: key and value, each left out when empty.
            fn entry_len(
                key_encoded_len: &impl Fn(u32, &String) -> usize,
                val_encoded_len: &impl Fn(u32, &String) -> usize,
                key: &String,
                value: &String,
            ) -> usize {
                let key_len = if key.is_empty() {
                    0
                } else {
                    key_encoded_len(1, key)
                };
                let value_len = if value.is_empty() {
                    0
                } else {
                    val_encoded_len(2, value)
                };
                key_len + value_len
            }

            /// Writes the map as field `tag`, one entry per pair, in key order.
            pub fn encode<B: BufMut>(
                key_encode: impl Fn(u32, &String, &mut B),
                key_encoded_len: impl Fn(u32, &String) -> usize,
                val_encode: impl Fn(u32, &String, &mut B),
                val_encoded_len: impl Fn(u32, &String) -> usize,
                tag: u32,
                values: &StringMap,
                buf: &mut B,
            ) {
                for (key, value) in values {
                    let len = entry_len(&key_encoded_len, &val_encoded_len, key, value);
                    encode_key(tag, WireType::LengthDelimited, buf);
                    encode_varint(len as u64, buf);
                    if !key.is_empty() {
                        key_encode(1, key, buf);
                    }
                    if !value.is_empty() {
                        val_encode(2, value, buf);
                    }
                }
            }

            /// Reads one entry into the map; a key given again keeps the later value.
            pub fn merge<B: Buf>(
                key_merge: impl Fn(
                    WireType,
                    &mut String,
                    &mut B,
                    DecodeContext,
                ) -> Result<(), DecodeError>,
                val_merge: impl Fn(
                    WireType,
                    &mut String,
                    &mut B,
                    DecodeContext,
                ) -> Result<(), DecodeError>,
                values: &mut StringMap,
                buf: &mut B,
                ctx: DecodeContext,
            ) -> Result<(), DecodeError> {
                let mut entry = (String::new(), String::new());
                merge_loop(&mut entry, buf, ctx, |(key, value), buf, ctx| {
                    let (tag, wire_type) = decode_key(buf)?;
                    match tag {
                        1 => key_merge(wire_type, key, buf, ctx),
                        2 => val_merge(wire_type, value, buf, ctx),
                        _ => skip_field(wire_type, tag, buf, ctx),
                    }
                })?;
                values.insert(entry.0, entry.1);
                Ok(())
            }

            /// The length of the map's encoding as field `tag`.
            pub fn encoded_len(
                key_encoded_len: impl Fn(u32, &String) -> usize,
                val_encoded_len: impl Fn(u32, &String) -> usize,
                tag: u32,
                values: &StringMap,
            ) -> usize {
                values
                    .iter()
                    .map(|(key, value)| {
                        let len = entry_len(&key_encoded_len, &val_encoded_len, key, value);
                        key_len(tag) + encoded_len_varint(len as u64) + len
                    })
                    .sum()
            }
        }
    }
}
