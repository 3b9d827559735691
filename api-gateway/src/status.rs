//! The gRPC status a registry error answers with: the Kubernetes reason (NotFound,
//! AlreadyExists, Conflict, Invalid, Forbidden, Gone ...) as the code a client acts on, and
//! the error's text as the message.
//!
//! Also an authorizer's [`Decision`] as the answer to a request (PermissionDenied naming
//! the refused user and request).
//!
//! Owns those mappings, once for every service. It must not decide anything itself.

use raft_store::kv::KvError;
use rafter_proto::well_known::NO_SPACE_METADATA;
use rafter_proto::well_known::OUTCOME_UNKNOWN_METADATA;
use rafter_proto::well_known::TOO_MANY_REQUESTS_METADATA;
use tonic::metadata::MetadataValue;
use tonic::Status;

use crate::authz::{Attributes, Authorizer, Decision};
use crate::flow_control::{Throttled, RETRY_AFTER_SECONDS};
use crate::registry::RegistryError;
use crate::store::StoreError;

/// Maps a registry error to the gRPC status a client acts on.
///
/// `UNAVAILABLE` means the write was not proposed (no leader, the store refused it), so a
/// client may send it to another master. A write whose outcome the store does not know is
/// `DEADLINE_EXCEEDED` (gRPC's code for "may have completed") marked with
/// [`OUTCOME_UNKNOWN_METADATA`], see [`outcome_unknown`].
pub fn status_of(error: RegistryError) -> Status {
    let message = error.to_string();
    match error {
        RegistryError::NotFound { .. } => Status::not_found(message),
        RegistryError::AlreadyExists { .. } => Status::already_exists(message),
        RegistryError::Conflict { .. } => Status::aborted(message),
        RegistryError::Invalid { .. } | RegistryError::BadRequest(_) => {
            Status::invalid_argument(message)
        }
        RegistryError::Forbidden(_) => Status::permission_denied(message),
        RegistryError::TooLarge(_) => Status::resource_exhausted(message),
        RegistryError::Gone(_) => Status::out_of_range(message),
        RegistryError::Store(StoreError::Timeout(_)) => Status::deadline_exceeded(message),
        RegistryError::Store(StoreError::OutcomeUnknown(_)) => outcome_unknown(message),
        RegistryError::Fenced(_) => Status::aborted(message),
        // The leader's disk is below its reserve: every master would forward it there.
        RegistryError::Store(StoreError::Kv(KvError::NoSpace { .. })) => {
            let mut status = Status::resource_exhausted(message);
            status
                .metadata_mut()
                .insert(NO_SPACE_METADATA, MetadataValue::from_static("1"));
            status
        }
        // Every master refuses it alike: not an outage another master might not have.
        RegistryError::Store(StoreError::Kv(KvError::Invalid(_))) => {
            Status::failed_precondition(message)
        }
        RegistryError::Store(_) => Status::unavailable(message),
        RegistryError::Internal(_) => Status::internal(message),
    }
}

/// The status of a mutating request that got no seat: `RESOURCE_EXHAUSTED` marked with
/// [`TOO_MANY_REQUESTS_METADATA`] (the seconds to wait), HTTP's 429.
pub(crate) fn throttled(refusal: &Throttled) -> Status {
    let mut status = Status::resource_exhausted(refusal.to_string());
    status.metadata_mut().insert(
        TOO_MANY_REQUESTS_METADATA,
        MetadataValue::from(RETRY_AFTER_SECONDS),
    );
    status
}

/// The status of a write the store may or may not have applied: `DEADLINE_EXCEEDED` with
/// the [`OUTCOME_UNKNOWN_METADATA`] marker, so that clients never take it for "not sent".
pub(crate) fn outcome_unknown(message: impl Into<String>) -> Status {
    let mut status = Status::deadline_exceeded(message);
    status
        .metadata_mut()
        .insert(OUTCOME_UNKNOWN_METADATA, MetadataValue::from_static("1"));
    status
}

/// The authorizer's decision as the answer to a request: `PermissionDenied` naming the
/// refused user and request, or nothing.
pub(crate) fn authorize(
    authorizer: &dyn Authorizer,
    attributes: &Attributes<'_>,
) -> Result<(), Status> {
    match authorizer.authorize(attributes) {
        Decision::Allow => Ok(()),
        Decision::Deny(why) => Err(Status::permission_denied(why)),
        Decision::NoOpinion => Err(Status::permission_denied(attributes.forbidden())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn an_unknown_outcome_is_a_marked_deadline_and_only_a_refusal_is_unavailable() {
        let unknown = status_of(RegistryError::Store(StoreError::OutcomeUnknown(
            "the entry was discarded".to_owned(),
        )));
        assert_eq!(unknown.code(), Code::DeadlineExceeded);
        assert!(unknown.metadata().get(OUTCOME_UNKNOWN_METADATA).is_some());
        assert!(unknown.message().contains("may or may not"), "{unknown:?}");

        let refused = status_of(RegistryError::Store(StoreError::Unavailable(
            "no leader".to_owned(),
        )));
        assert_eq!(refused.code(), Code::Unavailable);
        assert!(refused.metadata().get(OUTCOME_UNKNOWN_METADATA).is_none());

        let slow = status_of(RegistryError::Store(StoreError::Timeout("read".to_owned())));
        assert_eq!(slow.code(), Code::DeadlineExceeded);
    }

    #[test]
    fn every_store_error_answers_with_the_code_its_outcome_calls_for() {
        let cases: Vec<(StoreError, Code, bool)> = vec![
            (
                StoreError::OutcomeUnknown("discarded".into()),
                Code::DeadlineExceeded,
                true,
            ),
            (
                StoreError::Unavailable("no leader".into()),
                Code::Unavailable,
                false,
            ),
            (
                StoreError::Timeout("slow".into()),
                Code::DeadlineExceeded,
                false,
            ),
            (
                StoreError::Kv(KvError::Compacted {
                    requested: 1,
                    compacted: 5,
                }),
                Code::OutOfRange,
                false,
            ),
            (
                StoreError::Kv(KvError::FutureRevision {
                    requested: 9,
                    current: 5,
                }),
                Code::InvalidArgument,
                false,
            ),
            (
                StoreError::Kv(KvError::ValueTooLarge { size: 9, limit: 5 }),
                Code::ResourceExhausted,
                false,
            ),
            (
                StoreError::Kv(KvError::RequestTooLarge { size: 9, limit: 5 }),
                Code::ResourceExhausted,
                false,
            ),
            (
                StoreError::Kv(KvError::Fenced {
                    decided_in: 2,
                    entry_term: 3,
                }),
                Code::Aborted,
                false,
            ),
            (
                StoreError::refused("member id 0 is not valid"),
                Code::FailedPrecondition,
                false,
            ),
            (
                StoreError::Kv(KvError::Storage("disk".into())),
                Code::Unavailable,
                false,
            ),
            (
                StoreError::Kv(KvError::NoSpace {
                    member: 2,
                    free: 1,
                    reserve: 8,
                }),
                Code::ResourceExhausted,
                false,
            ),
        ];
        for (error, code, marked) in cases {
            let shown = format!("{error:?}");
            let status = status_of(RegistryError::from(error));
            assert_eq!(status.code(), code, "{shown}");
            assert_eq!(
                status.metadata().get(OUTCOME_UNKNOWN_METADATA).is_some(),
                marked,
                "{shown}"
            );
            assert_eq!(
                status.metadata().get(NO_SPACE_METADATA).is_some(),
                shown.contains("NoSpace"),
                "{shown}"
            );
        }
    }
}
