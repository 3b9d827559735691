//! What a caller asks of a delete or a list, in the API's terms: [`DeleteOptions`] with its
//! [`Propagation`], [`ListOptions`] and the [`ReadConsistency`] of a read.
//!
//! Owns these shapes and their parsing from the API's strings, once for the client, the
//! server and the controllers (as apimachinery's `meta/v1` does for client-go). It must not
//! carry them out: deleting, listing and reading are the server's.

use crate::kind::{Kind, Object};
use crate::selector::{FieldSelector, Selector};

/// A value of the API's vocabulary that names no known option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// `propagationPolicy` is not one of the three policies.
    #[error("propagationPolicy {0:?} is not one of Orphan, Background, Foreground")]
    Propagation(String),
}

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Leave dependents in place without their owner reference.
    Orphan,
    /// Delete the owner now, dependents afterwards (the default).
    Background,
    /// Delete dependents first; the owner waits with a `foregroundDeletion` finalizer.
    Foreground,
}

impl Propagation {
    /// Parses the API's propagation policy ("" is Background).
    pub fn parse(text: &str) -> Result<Propagation, OptionError> {
        match text {
            "" | "Background" => Ok(Propagation::Background),
            "Orphan" => Ok(Propagation::Orphan),
            "Foreground" => Ok(Propagation::Foreground),
            other => Err(OptionError::Propagation(other.to_owned())),
        }
    }

    /// The API's name of the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Orphan => "Orphan",
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
        }
    }
}

/// Options of a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Seconds to let the object finish; `None` is the object's own default.
    pub grace_period_seconds: Option<i64>,
    /// Dependents' fate.
    pub propagation: Option<Propagation>,
    /// The uid the object must have.
    pub precondition_uid: Option<String>,
    /// The resourceVersion the object must have.
    pub precondition_resource_version: Option<String>,
}

/// Whether a read must reflect every write acknowledged before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Linearizable: confirmed with the leader first.
    Linearizable,
    /// Serializable: the local member's state, possibly stale.
    Serializable,
}

/// What a list asks for.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// The kind.
    pub kind: Kind,
    /// One namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Labels the objects must match.
    pub labels: Selector,
    /// Fields the objects must match.
    pub fields: FieldSelector,
    /// Items per page; 0 for all.
    pub limit: usize,
    /// The token of the previous page.
    pub continue_token: Option<String>,
    /// Linearizable or possibly stale.
    pub consistency: ReadConsistency,
}

impl ListOptions {
    /// Every object of `kind` in `namespace` (all namespaces when `None`).
    pub fn all(kind: Kind, namespace: Option<&str>) -> ListOptions {
        ListOptions {
            kind,
            namespace: namespace.map(str::to_owned),
            labels: Selector::everything(),
            fields: FieldSelector::everything(),
            limit: 0,
            continue_token: None,
            consistency: ReadConsistency::Linearizable,
        }
    }

    /// Whether `object` passes both selectors.
    pub fn matches(&self, object: &Object) -> bool {
        self.labels.matches(&object.metadata().labels) && self.fields.matches(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_parses_the_api_names_and_refuses_others() {
        for p in [
            Propagation::Orphan,
            Propagation::Background,
            Propagation::Foreground,
        ] {
            assert_eq!(Propagation::parse(p.as_str()), Ok(p));
        }
        assert_eq!(Propagation::parse(""), Ok(Propagation::Background));
        let err = Propagation::parse("orphan").unwrap_err();
        assert!(err.to_string().contains("\"orphan\""), "{err}");
    }
}
