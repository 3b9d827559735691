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
    failover_probed(count, total, Duration::from_secs(1), None)
}

fn failover_probed(
    count: usize,
    total: Duration,
    attempt: Duration,
    probe: Option<Probe>,
) -> Failover {
    let endpoints = (0..count)
        .map(|i| Endpoint {
            address: format!("127.0.0.1:{}", 6443 + i),
            channel: tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy(),
            contact: None,
        })
        .collect();
    Failover::new(
        endpoints,
        Budget {
            total,
            attempt,
            probe_after: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(500),
            retry_unknown_outcomes: false,
        },
        probe,
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
async fn a_create_whose_connection_broke_is_of_unknown_outcome_and_never_sent_again() {
    // Sent again, a create that applied the first time would create the object a second
    // time if someone deleted it in between.
    let (result, attempts) =
        scripted(Idempotency::Write, vec![Err(broken()), Ok("created twice")]).await;
    assert!(
        matches!(result, Err(ClientError::OutcomeUnknown { .. })),
        "{result:?}"
    );
    assert_eq!(attempts, 1);
    let (result, _) = scripted(
        Idempotency::Write,
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
fn round_pauses_are_a_quarter_of_the_time_waited_and_bounded() {
    assert_eq!(round_pause(Duration::ZERO), MIN_ROUND_PAUSE);
    assert_eq!(
        round_pause(Duration::from_millis(400)),
        Duration::from_millis(100)
    );
    assert_eq!(
        round_pause(Duration::from_millis(600)),
        Duration::from_millis(150),
        "a call 600 ms into an election is asked again 150 ms later, not at the next power of two"
    );
    assert_eq!(round_pause(Duration::from_secs(30)), MAX_ROUND_PAUSE);
}

#[test]
fn a_master_is_silent_only_when_another_answers_its_probe() {
    assert_eq!(verdict(0, &[true, false, false]), Verdict::Alive);
    assert_eq!(
        verdict(0, &[false, false, true]),
        Verdict::Silent { other: 2 }
    );
    assert_eq!(
        verdict(0, &[false, false, false]),
        Verdict::Undecided,
        "nobody answering says nothing about one master"
    );
}

/// A probe under which the masters in `silent` never answer and the others do at once.
fn probe_where_silent(silent: &'static [usize]) -> Probe {
    Arc::new(move |i, _, _| {
        Box::pin(async move {
            if silent.contains(&i) {
                std::future::pending::<()>().await;
            }
            Ok(())
        })
    })
}

/// Runs a call on three masters (10 s attempts) whose first attempt never ends and
/// whose later ones answer at once: what it ended with, the attempts, the time taken.
async fn first_attempt_hangs(
    idempotency: Idempotency,
    probe: Probe,
) -> (Result<(usize, &'static str), ClientError>, usize, Duration) {
    let failover = failover_probed(
        3,
        Duration::from_secs(30),
        Duration::from_secs(10),
        Some(probe),
    );
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let result = failover
        .run("test", idempotency, |_, _| {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    std::future::pending::<()>().await;
                }
                Ok("answer")
            }
        })
        .await;
    (result, attempts.into_inner(), started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_read_on_a_silent_master_moves_on_after_a_probe_not_the_attempt_timeout() {
    let (result, attempts, took) =
        first_attempt_hangs(Idempotency::Read, probe_where_silent(&[0])).await;
    assert_eq!(result.unwrap(), (1, "answer"));
    assert_eq!(attempts, 2);
    assert!(
        took <= Duration::from_millis(800) + Duration::from_millis(50),
        "probe after 300 ms, probe timeout 500 ms: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_on_a_silent_master_is_of_unknown_outcome_and_its_watches_are_told() {
    let failover = failover_probed(
        3,
        Duration::from_secs(30),
        Duration::from_secs(10),
        Some(probe_where_silent(&[0])),
    );
    let mut silenced = failover.silenced(0);
    let result = failover
        .run("test", Idempotency::Write, |_, _| async {
            std::future::pending::<Result<&str, Status>>().await
        })
        .await;
    assert!(
        matches!(result, Err(ClientError::OutcomeUnknown { ref message, .. }) if message.contains("fell silent")),
        "{result:?}"
    );
    assert!(
        silenced.has_changed().unwrap(),
        "open watches on it move on"
    );
    silenced.mark_unchanged();
    assert_eq!(
        failover.with_health(|h| h.order(Instant::now()))[0],
        1,
        "the silent master backs off"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_master_that_answers_its_probe_is_waited_for() {
    let (result, attempts, took) =
        first_attempt_hangs(Idempotency::Write, probe_where_silent(&[])).await;
    assert!(
        matches!(result, Err(ClientError::OutcomeUnknown { ref message, .. }) if message.contains("no answer within 10s")),
        "waited for the attempt timeout: {result:?}"
    );
    assert_eq!(attempts, 1);
    assert!(took >= Duration::from_secs(10), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn when_no_master_answers_a_probe_nothing_is_concluded() {
    let (result, attempts, _) =
        first_attempt_hangs(Idempotency::Read, probe_where_silent(&[0, 1, 2])).await;
    assert_eq!(
        result.unwrap(),
        (1, "answer"),
        "moved on only at the attempt timeout"
    );
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn the_test_only_switch_resends_a_write_of_unknown_outcome() {
    let mut failover = failover(3, Duration::from_millis(300));
    failover.budget.retry_unknown_outcomes = true;
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let result = failover
        .run("test", Idempotency::Write, |_, _| {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(broken())
                } else {
                    Ok("again")
                }
            }
        })
        .await;
    assert_eq!(
        result.unwrap(),
        (1, "again"),
        "the broken client sends it twice"
    );
    assert_eq!(attempts.into_inner(), 2);
}

#[test]
fn a_silent_master_is_left_out_of_the_rounds_while_another_is_not() {
    let now = Instant::now();
    let mut health = Health::new(3);
    health.failed(0, now);
    health.fell_silent(0, now);
    assert_eq!(
        health.order(now + FIRST_BACKOFF),
        [1, 2],
        "its back-off is over, its silence is not"
    );
    health.fell_silent(1, now);
    health.fell_silent(2, now);
    assert_eq!(
        health.order(now),
        [1, 2, 0],
        "when every master fell silent, every one is tried"
    );
    assert_eq!(health.order(now + SILENT_REST), [1, 2, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_call_during_an_election_does_not_go_back_to_the_silent_master() {
    // Master 0 never answers; the two others answer UNAVAILABLE (no leader yet) four
    // times, then serve.
    let failover = failover_probed(
        3,
        Duration::from_secs(30),
        Duration::from_secs(10),
        Some(probe_where_silent(&[0])),
    );
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let result = failover
        .run("test", Idempotency::Read, |_, _| {
            let n = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                match n {
                    0 => std::future::pending().await,
                    1..=4 => Err(Status::unavailable("no leader")),
                    _ => Ok("answer"),
                }
            }
        })
        .await;
    assert_eq!(
        result.unwrap(),
        (1, "answer"),
        "served by a live master, not by the silent one tried again"
    );
    assert_eq!(attempts.into_inner(), 6, "0, then 1, 2, 1, 2, 1");
    // The two pauses are a quarter of the time waited, ±20%: 160–240 ms after the probe
    // wait, then 192–312 ms, so at most 1,352 ms in all; a second probe wait would add
    // 800 ms more.
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "one probe wait (800 ms) and two short pauses, not a second probe wait: {:?}",
        started.elapsed()
    );
}
