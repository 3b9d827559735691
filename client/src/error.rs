//! What a client call can fail with, and how one failed attempt is classified.
//!
//! Owns the mapping from gRPC statuses to Kubernetes-style reasons ([`ClientError`]) and
//! the pure decision of whether an attempt failed before the request reached a master
//! ([`Failure::NotSent`]), while it was in flight ([`Failure::InFlight`]), or was answered
//! ([`Failure::Answer`]). It does no I/O and keeps no state.

use std::error::Error as _;
use std::fmt;

use rafter_proto::well_known::NO_SPACE_METADATA;
use rafter_proto::well_known::OUTCOME_UNKNOWN_METADATA;
use rafter_proto::well_known::TOO_MANY_REQUESTS_METADATA;
use tonic::{Code, Status};

use crate::config::ConfigError;

/// One master that could not serve a request, and why (its last failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFailure {
    /// `host:port` of the master.
    pub endpoint: String,
    /// What went wrong there.
    pub error: String,
}

impl fmt::Display for EndpointFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.endpoint, self.error)
    }
}

fn join(failures: &[EndpointFailure]) -> String {
    if failures.is_empty() {
        return "no endpoint was tried".to_owned();
    }
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a client call failed, with the Kubernetes reason a caller acts on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The object does not exist (NotFound).
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
    },
    /// An object with this name exists already (AlreadyExists).
    #[error("already exists: {message}")]
    AlreadyExists {
        /// The server's message.
        message: String,
    },
    /// The object changed since it was read: a stale resourceVersion or a failed
    /// precondition (Conflict, gRPC Aborted). Read it again and retry.
    #[error("conflict: {message}")]
    Conflict {
        /// The server's message.
        message: String,
    },
    /// The object or the request is invalid (InvalidArgument).
    #[error("invalid: {message}")]
    Invalid {
        /// The server's message.
        message: String,
        /// The field errors, `path: message`, when the server listed them.
        causes: Vec<String>,
    },
    /// The caller is known and not allowed, or the request is refused (quota, a system
    /// namespace ...) (Forbidden, gRPC PermissionDenied).
    #[error("forbidden: {message}")]
    Forbidden {
        /// The server's message.
        message: String,
    },
    /// The credentials are missing, unknown or expired (Unauthenticated). Never retried.
    #[error("unauthenticated: {message}")]
    Unauthenticated {
        /// The server's message.
        message: String,
    },
    /// The object or request is larger than the cluster accepts (ResourceExhausted).
    #[error("too large: {message}")]
    TooLarge {
        /// The server's message.
        message: String,
    },
    /// The write was refused because the leader's data disk is below its reserve
    /// (ResourceExhausted, marked): nothing was written; the same write is taken once
    /// space is freed.
    #[error("insufficient storage: {message}")]
    NoSpace {
        /// The server's message (the member, its free space and its reserve).
        message: String,
    },
    /// The master had no seat for the mutating request (its user's queue was full, or it
    /// waited too long): HTTP's 429. Nothing was written; the client sends it again after
    /// `retry_after` while its time lasts, so this is what is left once that ran out.
    #[error("too many requests: {message}")]
    TooManyRequests {
        /// The server's message (the user and why).
        message: String,
        /// How long the server asked to wait before sending it again.
        retry_after: std::time::Duration,
    },
    /// The resourceVersion or continue token is older than the store's history
    /// (Expired, gRPC OutOfRange): list again and watch from the list's resourceVersion.
    #[error("expired: {message}")]
    Expired {
        /// The server's message.
        message: String,
    },
    /// The object is not in a state that allows the request (FailedPrecondition), e.g.
    /// approving a denied certificate request.
    #[error("failed precondition: {message}")]
    FailedPrecondition {
        /// The server's message.
        message: String,
    },
    /// The server does not serve this call (Unimplemented).
    #[error("not supported by the server: {message}")]
    Unsupported {
        /// The server's message.
        message: String,
    },
    /// A write was sent and no answer came back (the connection broke, or the deadline
    /// passed): it may or may not have been applied. Read the object to find out.
    #[error("the outcome of the request is unknown ({endpoint}: {message}); read the object to find out whether it was applied")]
    OutcomeUnknown {
        /// The master the write was last sent to.
        endpoint: String,
        /// What happened to it.
        message: String,
    },
    /// No master could serve the request within the client's time budget.
    #[error("no master could serve the request: {}", join(attempts))]
    NoMasterAvailable {
        /// The last failure of every master tried, in endpoint order.
        attempts: Vec<EndpointFailure>,
    },
    /// The client config is missing, unreadable or incomplete.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The connection cannot be set up from the config (a bad endpoint, unusable TLS
    /// material, a token that cannot be sent as a header).
    #[error("cannot set up the client: {message}")]
    Setup {
        /// What is wrong.
        message: String,
    },
    /// A local file the call sends (an image archive) cannot be read.
    #[error("reading {}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered with something this client cannot read.
    #[error("unexpected answer from the server: {message}")]
    Protocol {
        /// What was wrong with it.
        message: String,
    },
    /// The server failed in a way not listed above (Internal, Unknown ...).
    #[error("the server failed ({code:?}): {message}")]
    Server {
        /// The gRPC code.
        code: Code,
        /// The server's message.
        message: String,
    },
}

impl ClientError {
    /// Whether repeating the same request unchanged later may succeed: no master was
    /// available, or a write's outcome is unknown (read first: the retry may find it
    /// applied, as AlreadyExists or Conflict). A Conflict needs a fresh read, Expired a
    /// fresh list, so neither counts.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ClientError::NoMasterAvailable { .. } | ClientError::OutcomeUnknown { .. }
        )
    }

    /// The Kubernetes reason: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`,
    /// `Forbidden`, `Unauthorized`, `RequestEntityTooLarge`, `Expired`, `Timeout`,
    /// `ServiceUnavailable` ..., or `""` for errors that never reached a server.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientError::NotFound { .. } => "NotFound",
            ClientError::AlreadyExists { .. } => "AlreadyExists",
            ClientError::Conflict { .. } => "Conflict",
            ClientError::Invalid { .. } => "Invalid",
            ClientError::Forbidden { .. } => "Forbidden",
            ClientError::Unauthenticated { .. } => "Unauthorized",
            ClientError::TooLarge { .. } => "RequestEntityTooLarge",
            ClientError::NoSpace { .. } => "InsufficientStorage",
            ClientError::TooManyRequests { .. } => "TooManyRequests",
            ClientError::Expired { .. } => "Expired",
            ClientError::FailedPrecondition { .. } => "FailedPrecondition",
            ClientError::Unsupported { .. } => "MethodNotAllowed",
            ClientError::OutcomeUnknown { .. } => "Timeout",
            ClientError::NoMasterAvailable { .. } => "ServiceUnavailable",
            ClientError::Server { .. } | ClientError::Protocol { .. } => "InternalError",
            ClientError::Config(_) | ClientError::Setup { .. } | ClientError::File { .. } => "",
        }
    }

    /// The error a server's definitive answer means.
    pub(crate) fn from_answer(status: &Status) -> ClientError {
        let message = status.message().to_owned();
        match status.code() {
            Code::NotFound => ClientError::NotFound { message },
            Code::AlreadyExists => ClientError::AlreadyExists { message },
            Code::Aborted => ClientError::Conflict { message },
            Code::InvalidArgument => ClientError::Invalid {
                causes: causes_of(&message),
                message,
            },
            Code::PermissionDenied => ClientError::Forbidden { message },
            Code::Unauthenticated => ClientError::Unauthenticated { message },
            Code::ResourceExhausted if status.metadata().get(NO_SPACE_METADATA).is_some() => {
                ClientError::NoSpace { message }
            }
            Code::ResourceExhausted
                if status.metadata().get(TOO_MANY_REQUESTS_METADATA).is_some() =>
            {
                let seconds = status
                    .metadata()
                    .get(TOO_MANY_REQUESTS_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                ClientError::TooManyRequests {
                    message,
                    retry_after: std::time::Duration::from_secs(seconds),
                }
            }
            Code::ResourceExhausted => ClientError::TooLarge { message },
            Code::OutOfRange => ClientError::Expired { message },
            Code::FailedPrecondition => ClientError::FailedPrecondition { message },
            Code::Unimplemented => ClientError::Unsupported { message },
            code => ClientError::Server { code, message },
        }
    }
}

/// The field errors of an "X is invalid: a: m; b: m" message.
fn causes_of(message: &str) -> Vec<String> {
    match message.split_once(" is invalid: ") {
        Some((_, rest)) => rest
            .split("; ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    }
}

/// How one attempt on one master failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request did not reach a master, or the master refused it before acting (it
    /// could not connect, or the gateway answered Unavailable: the store refused the
    /// write). Safe to send again anywhere.
    NotSent(String),
    /// The request was sent and no answer came (the connection broke mid-request, the
    /// deadline passed): a write may or may not have been applied.
    InFlight(String),
    /// The master answered; another master would answer the same.
    Answer(ClientError),
}

/// Classifies a failed attempt. Statuses a server sent carry no source error; statuses
/// made by the client's transport carry the transport error as their source.
///
/// A status marked with [`OUTCOME_UNKNOWN_METADATA`] (the gateway's store does not know
/// whether the write was applied) is in flight whatever its code: it is never "not sent".
pub(crate) fn classify(status: &Status) -> Failure {
    if status.metadata().get(OUTCOME_UNKNOWN_METADATA).is_some() {
        return Failure::InFlight(status.message().to_owned());
    }
    let Some(source) = status.source() else {
        return match status.code() {
            Code::Unavailable => Failure::NotSent(status.message().to_owned()),
            Code::DeadlineExceeded | Code::Cancelled => {
                Failure::InFlight(status.message().to_owned())
            }
            _ => Failure::Answer(ClientError::from_answer(status)),
        };
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
    let mut connect = false;
    let mut deepest = status.message().to_owned();
    while let Some(error) = cause {
        if error.downcast_ref::<tonic::ConnectError>().is_some() {
            connect = true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                connect = true;
            }
        }
        deepest = describe(error);
        cause = error.source();
    }
    if connect {
        Failure::NotSent(deepest)
    } else {
        Failure::InFlight(deepest)
    }
}

/// A short description of a transport error: "connection refused" rather than the OS's
/// capitalised text with its error number.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
            std::io::ErrorKind::TimedOut => return "connection timed out".to_owned(),
            _ => {}
        }
    }
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(Box<dyn std::error::Error + Send + Sync>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "transport error")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn statuses_a_server_sent_are_answers_except_unavailable_and_deadlines() {
        assert!(matches!(
            classify(&Status::unavailable("no quorum")),
            Failure::NotSent(m) if m == "no quorum"
        ));
        assert!(matches!(
            classify(&Status::deadline_exceeded("slow")),
            Failure::InFlight(_)
        ));
        assert!(matches!(
            classify(&Status::aborted("stale")),
            Failure::Answer(ClientError::Conflict { .. })
        ));
        assert!(matches!(
            classify(&Status::out_of_range("old")),
            Failure::Answer(ClientError::Expired { .. })
        ));
    }

    #[test]
    fn a_marked_unknown_outcome_is_in_flight_whatever_its_code() {
        for code in [Code::DeadlineExceeded, Code::Unavailable, Code::Unknown] {
            let mut status = Status::new(code, "the entry was discarded");
            status.metadata_mut().insert(
                OUTCOME_UNKNOWN_METADATA,
                tonic::metadata::MetadataValue::from_static("1"),
            );
            assert!(
                matches!(classify(&status), Failure::InFlight(ref m) if m == "the entry was discarded"),
                "{code:?}"
            );
        }
    }

    #[test]
    fn a_refused_connection_is_not_sent_and_a_broken_one_is_in_flight() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let connect = tonic::ConnectError(Box::new(refused));
        let status = Status::from_error(Box::new(Wrapped(Box::new(connect))));
        assert!(
            matches!(classify(&status), Failure::NotSent(ref m) if m == "connection refused"),
            "{:?}",
            classify(&status)
        );
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let status = Status::from_error(Box::new(Wrapped(Box::new(reset))));
        assert!(
            matches!(classify(&status), Failure::InFlight(ref m) if m == "connection reset"),
            "{:?}",
            classify(&status)
        );
    }

    #[test]
    fn invalid_answers_list_their_field_paths() {
        let status = Status::invalid_argument(
            "Pod \"a\" is invalid: spec.containers[0].image: Required value; metadata.name: bad",
        );
        let Failure::Answer(ClientError::Invalid { causes, .. }) = classify(&status) else {
            panic!("not invalid");
        };
        assert_eq!(
            causes,
            [
                "spec.containers[0].image: Required value",
                "metadata.name: bad"
            ]
        );
    }

    #[test]
    fn no_master_available_lists_every_endpoint() {
        let error = ClientError::NoMasterAvailable {
            attempts: vec![
                EndpointFailure {
                    endpoint: "127.0.0.1:6443".into(),
                    error: "connection refused".into(),
                },
                EndpointFailure {
                    endpoint: "127.0.0.1:6444".into(),
                    error: "the store is unavailable".into(),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "no master could serve the request: 127.0.0.1:6443: connection refused; 127.0.0.1:6444: the store is unavailable"
        );
        assert!(error.is_retryable());
        assert_eq!(error.reason(), "ServiceUnavailable");
    }
}
