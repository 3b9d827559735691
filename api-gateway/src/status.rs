//! The gRPC status a registry error answers with: the Kubernetes reason (NotFound,
//! AlreadyExists, Conflict, Invalid, Forbidden, Gone ...) as the code a client acts on, and
//! the error's text as the message.
//!
//! Also an authorizer's [`Decision`] as the answer to a request (PermissionDenied naming
//! the refused user and request).
//!
//! Owns those mappings, once for every service. It must not decide anything itself.

use tonic::Status;

use crate::authz::{Attributes, Authorizer, Decision};
use crate::registry::RegistryError;
use crate::store::StoreError;

/// Maps a registry error to the gRPC status a client acts on.
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
        RegistryError::Fenced(_) => Status::aborted(message),
        RegistryError::Store(_) => Status::unavailable(message),
        RegistryError::Internal(_) => Status::internal(message),
    }
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
