//! Seeded fault schedules: which fault each round of a chaos test injects, drawn from one
//! seed so that a failing run replays exactly.
//!
//! - `RAFTER_CHAOS_SEED=<n>` replays a run (every test prints the seed it drew, and again
//!   when it fails, through [`SeedReport`]);
//! - `RAFTER_CHAOS_ROUNDS=<n>` sets how many rounds a schedule has (a soak); a schedule
//!   never has fewer than its minimum counts of each fault.
//!
//! Pure apart from reading those two variables and the clock for a fresh seed; it must not
//! inject anything itself.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The seed of this run: `RAFTER_CHAOS_SEED` if set, else a fresh one. Printed either way.
pub fn seed() -> u64 {
    let seed = std::env::var("RAFTER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        });
    eprintln!("chaos seed {seed} (replay with RAFTER_CHAOS_SEED={seed})");
    seed
}

/// Rounds of a schedule: `RAFTER_CHAOS_ROUNDS` if set, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("RAFTER_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Prints the seed again if the test holding it panics (fails).
pub struct SeedReport(pub u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "chaos test failed with seed {0}: replay with RAFTER_CHAOS_SEED={0}",
                self.0
            );
        }
    }
}

/// `rounds` faults: at least `minimum`'s count of each, the rest drawn from `extra` (by
/// weight), in an order shuffled by `rng`.
pub fn draw<T: Copy>(
    rng: &mut StdRng,
    rounds: usize,
    minimum: &[(T, usize)],
    extra: &[(T, u32)],
) -> Vec<T> {
    let mut faults: Vec<T> = minimum
        .iter()
        .flat_map(|(fault, count)| std::iter::repeat_n(*fault, *count))
        .collect();
    let total: u32 = extra.iter().map(|(_, w)| *w).sum();
    while faults.len() < rounds && total > 0 {
        let mut pick = rng.gen_range(0..total);
        for (fault, weight) in extra {
            if pick < *weight {
                faults.push(*fault);
                break;
            }
            pick -= weight;
        }
    }
    faults.shuffle(rng);
    faults
}

/// A generator seeded with `seed`.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_replays_from_its_seed_and_keeps_its_minimums() {
        let minimum = [('k', 20), ('p', 2), ('s', 1)];
        let extra = [('k', 3), ('d', 1)];
        let a = draw(&mut rng(7), 40, &minimum, &extra);
        let b = draw(&mut rng(7), 40, &minimum, &extra);
        assert_eq!(a, b);
        assert_eq!(a.len(), 40);
        assert!(a.iter().filter(|f| **f == 'k').count() >= 20);
        assert_eq!(a.iter().filter(|f| **f == 'p').count(), 2);
        let fewer = draw(&mut rng(7), 5, &minimum, &extra);
        assert_eq!(fewer.len(), 23, "never fewer than the minimums");
        assert_ne!(draw(&mut rng(8), 40, &minimum, &extra), a);
    }
}
