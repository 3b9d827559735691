//! Encoding of openraft messages inside `RaftPayload` bytes.
//!
//! Owns the wire encoding (bincode 2 over serde) of the internal Raft service. It must not
//! do I/O.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encode a message for the wire.
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, tonic::Status> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| tonic::Status::internal(format!("encode: {e}")))
}

/// Decode a message from the wire.
pub(crate) fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, tonic::Status> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|e| tonic::Status::invalid_argument(format!("decode: {e}")))
}
