//! The MVCC key space: types, the backend trait and the pure `apply` function.
//!
//! Owns everything a log entry does to the key space. It must not know about Raft, the
//! network or RocksDB: the RocksDB backend lives in `storage/` and plugs in through
//! [`KvBackend`].

mod backend;
mod error;
mod serde_bytes;
pub(crate) mod state;
mod types;

pub use backend::BatchOp;
pub use backend::KvBackend;
pub use backend::KvRead;
pub use backend::MemBackend;
pub use error::KvError;
pub use state::apply;
pub use state::check_limits;
#[cfg(feature = "node")]
pub(crate) use state::op_bytes;
pub use state::Applied;
pub use state::KvState;
pub use state::RevisionEvents;
pub use types::*;
