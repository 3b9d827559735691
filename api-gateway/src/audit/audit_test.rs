use std::os::unix::fs::PermissionsExt;

use super::*;

fn request<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    namespace: &'a str,
) -> Request<'a> {
    Request {
        user: "alice",
        groups: &[],
        verb,
        group,
        resource,
        namespace,
    }
}

const POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: Request
    resources:
      - group: \"\"
        resources: [secrets, pods]
  - level: Metadata
";

#[test]
fn the_first_matching_rule_decides_and_secret_bodies_are_never_logged() {
    let policy = Policy::parse(POLICY).unwrap();
    assert!(policy.omits_request_received());
    assert_eq!(
        policy.level(&request("get", "", "pods", "default")),
        Level::None
    );
    assert_eq!(
        policy.level(&request("create", "", "pods", "default")),
        Level::Request
    );
    assert_eq!(
        policy.level(&request("create", "", "secrets", "default")),
        Level::Metadata,
        "Secret bodies never reach the log"
    );
    assert_eq!(
        policy.level(&request("delete", "apps", "deployments", "default")),
        Level::Metadata
    );
    let empty = Policy::parse("apiVersion: audit.k8s.io/v1\nkind: Policy\n").unwrap();
    assert_eq!(empty.level(&request("create", "", "pods", "")), Level::None);
    assert!(Policy::parse("apiVersion: v1\nkind: Policy\n").is_err());
    assert!(Policy::parse(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]\n"
    )
    .is_err());
}

fn event(i: usize) -> Event {
    let mut e = Event::new(
        Level::Metadata,
        format!("id-{i}"),
        Stage::ResponseComplete,
        "create",
        UserRef {
            username: "alice".into(),
            groups: vec!["dev".into()],
        },
        Some("10.0.0.1".into()),
        Some(ObjectRef {
            resource: "secrets".into(),
            namespace: "default".into(),
            name: format!("s-{i}"),
            ..Default::default()
        }),
        "2026-12-05T12:00:00.000000Z".into(),
    );
    e.response_status = Some(ResponseStatus { code: 201 });
    e
}

#[test]
fn records_are_kubernetes_event_json_lines_in_a_private_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path, 2048, 2).unwrap();
    for i in 0..40 {
        log.record(&event(i)).unwrap();
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let backup = dir.path().join("audit.log.1");
    assert_eq!(mode(&backup), 0o600);
    assert!(dir.path().join("audit.log.2").exists());
    assert!(
        !dir.path().join("audit.log.3").exists(),
        "only two backups are kept"
    );
    assert!(std::fs::metadata(&path).unwrap().len() <= 2048);

    let last = std::fs::read_to_string(&path).unwrap();
    let line: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(line["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(line["kind"], "Event");
    assert_eq!(line["auditID"], "id-39");
    assert_eq!(line["stage"], "ResponseComplete");
    assert_eq!(line["level"], "Metadata");
    assert_eq!(line["verb"], "create");
    assert_eq!(line["user"]["username"], "alice");
    assert_eq!(line["sourceIPs"][0], "10.0.0.1");
    assert_eq!(line["objectRef"]["resource"], "secrets");
    assert_eq!(line["objectRef"]["namespace"], "default");
    assert_eq!(line["objectRef"]["name"], "s-39");
    assert_eq!(line["responseStatus"]["code"], 201);
    assert!(line.get("requestObject").is_none());
}

#[test]
fn response_codes_are_the_http_codes_kubernetes_records() {
    use tonic::Code;
    assert_eq!(response_code("create", Ok(())), 201);
    for verb in ["get", "list", "watch", "update", "patch", "delete"] {
        assert_eq!(response_code(verb, Ok(())), 200, "{verb}");
    }
    let cases = [
        (Code::InvalidArgument, 422),
        (Code::FailedPrecondition, 400),
        (Code::Unauthenticated, 401),
        (Code::PermissionDenied, 403),
        (Code::NotFound, 404),
        (Code::AlreadyExists, 409),
        (Code::Aborted, 409),
        (Code::OutOfRange, 410),
        (Code::ResourceExhausted, 413),
        (Code::Cancelled, 499),
        (Code::Internal, 500),
        (Code::Unknown, 500),
        (Code::DataLoss, 500),
        (Code::Unimplemented, 501),
        (Code::Unavailable, 503),
        (Code::DeadlineExceeded, 504),
    ];
    for (code, http) in cases {
        assert_eq!(response_code("create", Err(code)), http, "{code:?}");
    }
}
