//! What a decoded object costs in memory, estimated from the length of its encoding, for
//! caches that keep decoded objects under a byte budget.
//!
//! Owns [`decoded_bytes`]. The estimate is meant as an upper bound for the objects a
//! cluster holds (checked against a counting allocator in `proto/tests/it/footprint.rs`);
//! it must not decode or walk the object, so a cache can charge it before decoding.

use crate::Object;

/// Heap bytes per encoded byte of a decoded object, beyond the `Object` itself, at most
/// for the shapes objects have. Small fields cost many times their encoding: a map of one
/// label is a B-tree node of ~540 bytes, a container ~1 KB however little it sets.
const PER_ENCODED_BYTE: usize = 16;

/// The reference counts of the `Arc` an object is shared in.
const ARC_HEADER: usize = 16;

/// The memory an object whose encoding is `encoded_len` bytes takes once decoded and shared
/// behind an `Arc`, estimated from above.
pub fn decoded_bytes(encoded_len: usize) -> usize {
    std::mem::size_of::<Object>() + ARC_HEADER + PER_ENCODED_BYTE * encoded_len
}
