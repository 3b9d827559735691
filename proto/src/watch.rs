//! What a watch delivers: [`WatchEvent`]s of a [`WatchEventType`].
//!
//! Owns the event's shape, once for the server that sends it, the client that receives it
//! and the agents and controllers that act on it. It must not know how events are produced.

use crate::kind::Object;

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    /// The object appeared (or started to match).
    Added,
    /// The object changed and still matches.
    Modified,
    /// The object went away (or stopped matching).
    Deleted,
    /// Progress: everything up to `revision` has been sent.
    Bookmark,
}

/// One watch event.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// What happened.
    pub event_type: WatchEventType,
    /// The object (its last state for deletions); `None` for bookmarks.
    pub object: Option<Object>,
    /// The revision of the change.
    pub revision: u64,
}
