use super::*;

#[test]
fn healthy_masters_come_first_starting_at_the_current_one() {
    let now = Instant::now();
    let mut health = Health::new(3);
    assert_eq!(health.order(now), [0, 1, 2]);
    health.failed(0, now);
    assert_eq!(health.current(), 1);
    assert_eq!(health.order(now), [1, 2, 0]);
    health.failed(2, now + Duration::from_millis(10));
    assert_eq!(
        health.order(now),
        [1, 0, 2],
        "resting masters come last, soonest back first"
    );
    assert_eq!(health.order(now + MAX_BACKOFF), [1, 2, 0]);
}

#[test]
fn back_off_grows_with_consecutive_failures_and_resets_on_success() {
    let now = Instant::now();
    let mut health = Health::new(3);
    health.failed(0, now);
    health.failed(0, now);
    health.succeeded(2);
    assert_eq!(
        health.order(now + FIRST_BACKOFF),
        [2, 1, 0],
        "the second failure backs off longer than the first"
    );
    assert_eq!(health.order(now + FIRST_BACKOFF * 2), [2, 0, 1]);
    health.succeeded(0);
    assert_eq!(health.current(), 0);
    assert_eq!(health.order(now), [0, 1, 2]);
}

fn failover(count: usize, total: Duration) -> Failover {
    let endpoints = (0..count)
        .map(|i| Endpoint {
            address: format!("127.0.0.1:{}", 6443 + i),
            channel: tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
        })
        .collect();
    Failover::new(
        endpoints,
        Budget {
            total,
            attempt: Duration::from_secs(1),
        },
    )
}

fn broken() -> Status {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    Status::from_error(Box::new(reset))
}

/// Runs a call whose n-th attempt gets `answers[n]` (the last one repeats), and
/// returns what it ended with and how many attempts it took.
async fn scripted(
    idempotency: Idempotency,
    answers: Vec<Result<&'static str, Status>>,
) -> (Result<(usize, &'static str), ClientError>, usize) {
    let failover = failover(3, Duration::from_millis(300));
    let answers = std::sync::Mutex::new(answers);
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let result = failover
        .run("test", idempotency, |_, _| {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut answers = answers.lock().unwrap();
            let answer = if n + 1 < answers.len() {
                std::mem::replace(&mut answers[n], Ok(""))
            } else {
                match answers.last().unwrap() {
                    Ok(v) => Ok(*v),
                    Err(s) => Err(Status::new(s.code(), s.message())),
                }
            };
            async move { answer }
        })
        .await;
    (result, attempts.into_inner())
}

#[tokio::test]
async fn a_write_refused_with_unavailable_is_sent_to_the_next_master() {
    let (result, attempts) = scripted(
        Idempotency::Write,
        vec![Err(Status::unavailable("no quorum")), Ok("done")],
    )
    .await;
    assert_eq!(result.unwrap(), (1, "done"));
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn a_write_whose_connection_broke_is_of_unknown_outcome_and_not_resent() {
    let (result, attempts) = scripted(Idempotency::Write, vec![Err(broken()), Ok("done")]).await;
    assert!(
        matches!(result, Err(ClientError::OutcomeUnknown { ref endpoint, .. }) if endpoint == "127.0.0.1:6443"),
        "{result:?}"
    );
    assert_eq!(attempts, 1);
    let (result, attempts) = scripted(
        Idempotency::Write,
        vec![Err(Status::deadline_exceeded("slow")), Ok("done")],
    )
    .await;
    assert!(matches!(result, Err(ClientError::OutcomeUnknown { .. })));
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn a_read_whose_connection_broke_is_sent_again() {
    let (result, attempts) = scripted(Idempotency::Read, vec![Err(broken()), Ok("x")]).await;
    assert_eq!(result.unwrap(), (1, "x"));
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn a_create_is_resent_and_already_exists_after_a_lost_answer_is_unknown() {
    let (result, _) = scripted(Idempotency::Create, vec![Err(broken()), Ok("created")]).await;
    assert_eq!(
        result.unwrap(),
        (1, "created"),
        "nothing was created the first time"
    );
    let (result, attempts) = scripted(
        Idempotency::Create,
        vec![Err(broken()), Err(Status::already_exists("taken"))],
    )
    .await;
    assert!(
        matches!(result, Err(ClientError::OutcomeUnknown { .. })),
        "{result:?}"
    );
    assert_eq!(attempts, 2);
    let (result, _) = scripted(
        Idempotency::Create,
        vec![Err(Status::already_exists("taken"))],
    )
    .await;
    assert!(
        matches!(result, Err(ClientError::AlreadyExists { .. })),
        "a plain AlreadyExists stays one"
    );
}

#[tokio::test]
async fn definitive_answers_are_never_retried() {
    let (result, attempts) = scripted(
        Idempotency::Read,
        vec![Err(Status::unauthenticated("who are you"))],
    )
    .await;
    assert!(matches!(result, Err(ClientError::Unauthenticated { .. })));
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn when_no_master_serves_the_budget_ends_in_one_error_naming_each() {
    let started = Instant::now();
    let (result, attempts) = scripted(
        Idempotency::Read,
        vec![Err(Status::unavailable("no leader"))],
    )
    .await;
    let Err(ClientError::NoMasterAvailable { attempts: failures }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(failures.len(), 3);
    assert!(failures.iter().all(|f| f.error == "no leader"));
    assert!(attempts > 3, "rounds are repeated until the budget ends");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by the budget"
    );
}

#[test]
fn round_pauses_grow_and_are_bounded() {
    assert_eq!(round_pause(0), FIRST_ROUND_PAUSE);
    assert_eq!(round_pause(1), FIRST_ROUND_PAUSE * 2);
    assert_eq!(round_pause(30), MAX_ROUND_PAUSE);
}
