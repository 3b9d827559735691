//! [`PatchType`]: the kinds of patch the API accepts and the content types naming them.
//!
//! Owns the names, once for the client that sends a patch and the server that applies it.
//! Applying a patch is the server's.

/// JSON merge patch's content type.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// Strategic merge patch's content type.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// A content type that names no patch type the API supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported patch type {content_type:?}; use {MERGE_PATCH} or {STRATEGIC_MERGE_PATCH}")]
pub struct UnsupportedPatchType {
    /// The content type as sent.
    pub content_type: String,
}

/// The kinds of patch the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// JSON merge patch, RFC 7386 (`application/merge-patch+json`).
    Merge,
    /// Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
    StrategicMerge,
}

impl PatchType {
    /// The patch type named by a content type; parameters (`; charset=utf-8`) are ignored.
    pub fn from_content_type(content_type: &str) -> Result<PatchType, UnsupportedPatchType> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            MERGE_PATCH => Ok(PatchType::Merge),
            STRATEGIC_MERGE_PATCH => Ok(PatchType::StrategicMerge),
            _ => Err(UnsupportedPatchType {
                content_type: content_type.to_owned(),
            }),
        }
    }

    /// The content type naming this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => MERGE_PATCH,
            PatchType::StrategicMerge => STRATEGIC_MERGE_PATCH,
        }
    }
}
