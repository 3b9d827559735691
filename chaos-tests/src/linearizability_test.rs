use super::*;

fn op(call: u64, ret: u64, input: Input, output: Output) -> Operation {
    Operation {
        call,
        ret,
        input,
        output,
    }
}

#[test]
fn sequential_history_with_overlapping_read_is_linearizable() {
    let h = [
        op(0, 10, Input::Put(1), Output::Done),
        op(5, 20, Input::Put(2), Output::Done),
        op(12, 15, Input::Get, Output::Value(Some(1))),
        op(21, 25, Input::Get, Output::Value(Some(2))),
    ];
    assert!(linearizable(None, &h).unwrap());
}

#[test]
fn stale_read_after_an_acknowledged_write_is_not_linearizable() {
    let h = [
        op(0, 10, Input::Put(1), Output::Done),
        op(11, 20, Input::Put(2), Output::Done),
        op(21, 25, Input::Get, Output::Value(Some(1))),
    ];
    assert!(!linearizable(None, &h).unwrap());
}

#[test]
fn write_with_unknown_outcome_may_or_may_not_take_effect() {
    let took = [
        op(0, 10, Input::Put(1), Output::Unknown),
        op(20, 30, Input::Get, Output::Value(Some(1))),
    ];
    let lost = [
        op(0, 10, Input::Put(1), Output::Unknown),
        op(20, 30, Input::Get, Output::Value(None)),
    ];
    assert!(linearizable(None, &took).unwrap());
    assert!(linearizable(None, &lost).unwrap());
}

#[test]
fn lost_acknowledged_write_is_not_linearizable() {
    let h = [
        op(0, 10, Input::Put(7), Output::Done),
        op(20, 30, Input::Get, Output::Value(None)),
    ];
    assert!(!linearizable(None, &h).unwrap());
}

#[test]
fn compare_and_swap_results_must_match_the_value_they_saw() {
    let ok = [
        op(0, 10, Input::Put(1), Output::Done),
        op(
            11,
            20,
            Input::Cas {
                expect: Some(1),
                new: 2,
            },
            Output::Swapped(true),
        ),
        op(
            21,
            30,
            Input::Cas {
                expect: Some(1),
                new: 3,
            },
            Output::Swapped(false),
        ),
        op(31, 40, Input::Get, Output::Value(Some(2))),
    ];
    assert!(linearizable(None, &ok).unwrap());
    let bad = [
        op(0, 10, Input::Put(1), Output::Done),
        op(
            11,
            20,
            Input::Cas {
                expect: Some(1),
                new: 2,
            },
            Output::Swapped(false),
        ),
    ];
    assert!(!linearizable(None, &bad).unwrap());
    let deleted = [
        op(0, 10, Input::Put(1), Output::Done),
        op(11, 20, Input::Delete, Output::Done),
        op(
            21,
            30,
            Input::Cas {
                expect: None,
                new: 5,
            },
            Output::Swapped(true),
        ),
    ];
    assert!(linearizable(None, &deleted).unwrap());
}

/// 3 clients, 3,000 operations each, overlapping: well past the old 128-operation cap.
fn long_history(stale_at: Option<usize>) -> Vec<Operation> {
    let mut history = Vec::new();
    let mut value = 0;
    for round in 0..3000u64 {
        let t = round * 100;
        // Two overlapping writes, then a read after both that sees the later one.
        history.push(op(t, t + 50, Input::Put(value + 1), Output::Done));
        history.push(op(t + 10, t + 60, Input::Put(value + 2), Output::Done));
        let seen = if stale_at == Some(round as usize) {
            value
        } else {
            value + 2
        };
        history.push(op(t + 70, t + 90, Input::Get, Output::Value(Some(seen))));
        value += 2;
    }
    history
}

#[test]
fn long_histories_are_checked_whole() {
    let started = std::time::Instant::now();
    assert!(linearizable(Some(0), &long_history(None)).unwrap());
    assert!(!linearizable(Some(0), &long_history(Some(2500))).unwrap());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn too_much_overlap_is_reported_not_guessed() {
    let history: Vec<Operation> = (0..200)
        .map(|i| op(i, 10_000, Input::Put(i), Output::Done))
        .collect();
    assert!(matches!(
        linearizable(None, &history),
        Err(CheckError::TooConcurrent { .. })
    ));
}
