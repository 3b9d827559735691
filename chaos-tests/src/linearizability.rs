//! A per-key linearizability checker for a register history: the Wing & Gong search with
//! memoisation of (linearized set, state), as Porcupine does, scaled to long histories.
//!
//! Linearizability is local: a history over many keys is linearizable iff each key's
//! sub-history is, so each key is checked on its own. Operations whose outcome is unknown
//! (timeouts, a member stopped mid-request) get an infinite return time: they may take
//! effect at any point after their call, or never.
//!
//! Scaling: acknowledged operations are sorted by call time and the linearized set is kept
//! as "every operation before `prefix`, plus a 128-wide window after it". An operation
//! can be linearized next only if it was called before the earliest return among those not
//! yet linearized, so the window bounds how many operations may overlap one another (128),
//! not how long the history is. Operations of unknown outcome, never forced, are kept in
//! a set of their own (at most 128 per key). Pure: no I/O, no clock.

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
    /// Set `new` if the current value is `expect` (`None`: absent, as a create).
    Cas {
        /// The value required.
        expect: Option<u64>,
        /// The value written.
        new: u64,
    },
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

/// One operation on one key, with its call and return times (any monotonic unit).
#[derive(Debug, Clone)]
pub struct Operation {
    /// When it was sent.
    pub call: u64,
    /// When its answer came.
    pub ret: u64,
    /// What was asked.
    pub input: Input,
    /// What was answered.
    pub output: Output,
}

/// Why a history could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// More operations overlap one another than the window holds.
    #[error("more than 128 operations overlap one pending operation (at call time {call})")]
    TooConcurrent {
        /// The call time where it happened.
        call: u64,
    },
    /// More operations of unknown outcome than the checker tracks.
    #[error("{count} operations of unknown outcome on one key (at most 128)")]
    TooManyUnknown {
        /// How many.
        count: usize,
    },
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

/// A point of the search: acknowledged operations `..prefix` and those of `window`
/// (bit i: operation prefix + i) linearized, the unknown ones of `unknown` applied, and
/// the register's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Point {
    prefix: usize,
    window: u128,
    unknown: u128,
    state: Option<u64>,
}

impl Point {
    /// Moves `prefix` past every linearized operation at its head.
    fn normalized(mut self) -> Point {
        while self.window & 1 == 1 {
            self.window >>= 1;
            self.prefix += 1;
        }
        self
    }
}

/// Whether the history of one key, starting from `initial`, is linearizable.
pub fn linearizable(initial: Option<u64>, history: &[Operation]) -> Result<bool, CheckError> {
    let mut known: Vec<&Operation> = Vec::new();
    let mut unknown: Vec<&Operation> = Vec::new();
    for op in history {
        match (&op.input, &op.output) {
            // Reads with unknown outcome say nothing.
            (Input::Get, Output::Unknown) => {}
            (_, Output::Unknown) => unknown.push(op),
            _ => known.push(op),
        }
    }
    if unknown.len() > 128 {
        return Err(CheckError::TooManyUnknown {
            count: unknown.len(),
        });
    }
    known.sort_by_key(|op| op.call);
    let n = known.len();
    let mut seen: HashSet<Point> = HashSet::new();
    let mut stack = vec![Point {
        prefix: 0,
        window: 0,
        unknown: 0,
        state: initial,
    }];
    while let Some(point) = stack.pop() {
        if point.prefix == n {
            return Ok(true);
        }
        if !seen.insert(point) {
            continue;
        }
        // The earliest return among acknowledged operations not yet linearized bounds
        // which may go next; operations called after it cannot lower it.
        let mut horizon = u64::MAX;
        let mut candidates = Vec::new();
        for (offset, op) in known[point.prefix..].iter().enumerate() {
            if op.call > horizon {
                break;
            }
            if offset >= 128 {
                return Err(CheckError::TooConcurrent { call: op.call });
            }
            if point.window & (1 << offset) == 0 {
                horizon = horizon.min(op.ret);
                candidates.push(offset);
            }
        }
        for offset in candidates {
            let op = known[point.prefix + offset];
            if op.call > horizon {
                continue;
            }
            if let Some(state) = step(point.state, op) {
                stack.push(
                    Point {
                        window: point.window | (1 << offset),
                        state,
                        ..point
                    }
                    .normalized(),
                );
            }
        }
        for (i, op) in unknown.iter().enumerate() {
            if point.unknown & (1 << i) != 0 || op.call > horizon {
                continue;
            }
            if let Some(state) = step(point.state, op) {
                stack.push(Point {
                    unknown: point.unknown | (1 << i),
                    state,
                    ..point
                });
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
#[path = "linearizability_test.rs"]
mod tests;
