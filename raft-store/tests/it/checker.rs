//! A per-key linearizability checker for a register history (Wing & Gong search with
//! memoisation of (linearized set, state), as Porcupine does).
//!
//! Linearizability is local: a history over many keys is linearizable iff each key's
//! sub-history is, so each key is checked on its own. Operations whose outcome is unknown
//! (timeouts, a member stopped mid-request) get an infinite return time: they may take
//! effect at any point after their call, or never.

use std::collections::HashSet;

/// What a client asked of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Set the value.
    Put(u64),
    /// Remove the key.
    Delete,
    /// Read the value.
    Get,
    /// Set `new` if the current value is `expect`.
    Cas { expect: Option<u64>, new: u64 },
}

/// What the client observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A write was acknowledged.
    Done,
    /// A read returned this value.
    Value(Option<u64>),
    /// A compare-and-swap reported whether it swapped.
    Swapped(bool),
    /// The outcome is unknown.
    Unknown,
}

/// One operation on one key, with its call and return times (ns since the test started).
#[derive(Debug, Clone)]
pub struct Operation {
    pub call: u64,
    pub ret: u64,
    pub input: Input,
    pub output: Output,
}

/// The register's next state if `op` can take effect in `state` and explain its output.
fn step(state: Option<u64>, op: &Operation) -> Option<Option<u64>> {
    match (&op.input, &op.output) {
        (Input::Put(v), Output::Done | Output::Unknown) => Some(Some(*v)),
        (Input::Delete, Output::Done | Output::Unknown) => Some(None),
        (Input::Get, Output::Value(v)) => (*v == state).then_some(state),
        (Input::Cas { expect, new }, Output::Swapped(true)) => {
            (*expect == state).then_some(Some(*new))
        }
        (Input::Cas { expect, .. }, Output::Swapped(false)) => (*expect != state).then_some(state),
        (Input::Cas { expect, new }, Output::Unknown) => {
            Some(if *expect == state { Some(*new) } else { state })
        }
        _ => None,
    }
}

/// Whether the history of one key, starting from `initial`, is linearizable.
pub fn linearizable(initial: Option<u64>, history: &[Operation]) -> bool {
    assert!(
        history.len() <= 128,
        "checker handles at most 128 operations per key"
    );
    let mut ops: Vec<Operation> = history.to_vec();
    for op in &mut ops {
        if op.output == Output::Unknown {
            op.ret = u64::MAX;
        }
    }
    // Reads with unknown outcome say nothing.
    ops.retain(|op| !(op.input == Input::Get && op.output == Output::Unknown));
    let n = ops.len();
    let must: u128 = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.ret != u64::MAX)
        .fold(0u128, |acc, (i, _)| acc | (1u128 << i));
    let mut seen: HashSet<(u128, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(u128, Option<u64>)> = vec![(0, initial)];
    while let Some((done, state)) = stack.pop() {
        if done & must == must {
            return true;
        }
        if !seen.insert((done, state)) {
            continue;
        }
        // The earliest return among operations not yet linearized bounds which may go next.
        let horizon = (0..n)
            .filter(|i| done & (1 << i) == 0)
            .map(|i| ops[i].ret)
            .min()
            .unwrap_or(u64::MAX);
        for (i, op) in ops.iter().enumerate() {
            if done & (1 << i) != 0 || op.call > horizon {
                continue;
            }
            if let Some(next) = step(state, op) {
                stack.push((done | (1 << i), next));
            }
        }
    }
    false
}

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
    assert!(linearizable(None, &h));
}

#[test]
fn stale_read_after_an_acknowledged_write_is_not_linearizable() {
    let h = [
        op(0, 10, Input::Put(1), Output::Done),
        op(11, 20, Input::Put(2), Output::Done),
        op(21, 25, Input::Get, Output::Value(Some(1))),
    ];
    assert!(!linearizable(None, &h));
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
    assert!(linearizable(None, &took));
    assert!(linearizable(None, &lost));
}

#[test]
fn lost_acknowledged_write_is_not_linearizable() {
    let h = [
        op(0, 10, Input::Put(7), Output::Done),
        op(20, 30, Input::Get, Output::Value(None)),
    ];
    assert!(!linearizable(None, &h));
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
    assert!(linearizable(None, &ok));
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
    assert!(!linearizable(None, &bad));
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
    assert!(linearizable(None, &deleted));
}
