//! Which keys a master's watch cache holds: every object key (`/registry/…`) but those
//! under the prefixes it is told to leave to the store (the Events', by default).
//!
//! Owns [`Scope`]: whether one key is held, whether a whole range is, and the held ranges
//! in key order (what a load reads). Pure; it knows key prefixes, not kinds, and it must
//! not read the store.

use raft_store::kv::KeyRange;

/// The prefix every held key starts with.
const CACHED_PREFIX: &str = "/registry/";

/// The first key past every key under [`CACHED_PREFIX`].
const CACHED_END: &[u8] = b"/registry0";

/// The keys a cache holds: under [`CACHED_PREFIX`], outside each skipped prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    /// The skipped prefixes as `[start, end)` ranges, sorted, none inside another.
    skipped: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Scope {
    /// Every key under [`CACHED_PREFIX`] except those under one of `skipped` (a prefix
    /// outside [`CACHED_PREFIX`] changes nothing).
    pub(crate) fn skipping<I, P>(skipped: I) -> Scope
    where
        I: IntoIterator<Item = P>,
        P: Into<Vec<u8>>,
    {
        let mut ranges: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut prefixes: Vec<Vec<u8>> = skipped
            .into_iter()
            .map(Into::into)
            .filter(|p| p.starts_with(CACHED_PREFIX.as_bytes()))
            .collect();
        prefixes.sort();
        for prefix in prefixes {
            if ranges
                .last()
                .is_some_and(|(start, _)| prefix.starts_with(start))
            {
                continue;
            }
            let end = match KeyRange::prefix(prefix.clone()) {
                KeyRange::Range { end: Some(end), .. } => end,
                _ => CACHED_END.to_vec(),
            };
            ranges.push((prefix, end));
        }
        Scope { skipped: ranges }
    }

    /// Whether `key` is held.
    pub(crate) fn holds(&self, key: &[u8]) -> bool {
        key.starts_with(CACHED_PREFIX.as_bytes())
            && !self
                .skipped
                .iter()
                .any(|(start, end)| key >= start.as_slice() && key < end.as_slice())
    }

    /// Whether every key of `range` is one the cache holds.
    pub(crate) fn covers(&self, range: &KeyRange) -> bool {
        let prefix = CACHED_PREFIX.as_bytes();
        match range {
            KeyRange::Key(key) => self.holds(key),
            KeyRange::Range { start, end } => {
                let Some(end) = end else { return false };
                start.starts_with(prefix)
                    && (end.starts_with(prefix) || end.as_slice() == CACHED_END)
                    && !self.skipped.iter().any(|(skip_start, skip_end)| {
                        start < skip_end && skip_start < end && start < end
                    })
            }
        }
    }

    /// The held key ranges, `[start, end)`, in key order: what a load reads.
    pub(crate) fn ranges(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut ranges = Vec::with_capacity(self.skipped.len() + 1);
        let mut start = CACHED_PREFIX.as_bytes().to_vec();
        for (skip_start, skip_end) in &self.skipped {
            if start < *skip_start {
                ranges.push((start, skip_start.clone()));
            }
            start = skip_end.clone();
        }
        if start.as_slice() < CACHED_END {
            ranges.push((start, CACHED_END.to_vec()));
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: &str = "/registry/core/events/";

    #[test]
    fn the_whole_registry_is_held_when_nothing_is_skipped() {
        let scope = Scope::default();
        assert!(scope.holds(b"/registry/core/events/default/a"));
        assert!(!scope.holds(b"/rafter/x"));
        assert!(scope.covers(&KeyRange::prefix(CACHED_PREFIX)));
        assert!(scope.covers(&KeyRange::prefix(EVENTS)));
        assert!(!scope.covers(&KeyRange::prefix("/rafter/")));
        assert!(!scope.covers(&KeyRange::prefix("")));
        assert!(!scope.covers(&KeyRange::range("/registry/a", "/s")));
        assert_eq!(
            scope.ranges(),
            vec![(CACHED_PREFIX.as_bytes().to_vec(), CACHED_END.to_vec())]
        );
    }

    #[test]
    fn a_skipped_prefix_is_neither_held_nor_covered() {
        let scope = Scope::skipping([EVENTS, "/rafter/ignored/"]);
        assert!(!scope.holds(b"/registry/core/events/default/a"));
        assert!(!scope.covers(&KeyRange::key("/registry/core/events/default/a")));
        assert!(!scope.covers(&KeyRange::prefix(EVENTS)));
        assert!(!scope.covers(&KeyRange::prefix("/registry/core/events/default/")));
        // A range that reaches into the skipped prefix, or spans it, is read elsewhere.
        assert!(!scope.covers(&KeyRange::prefix("/registry/core/")));
        assert!(!scope.covers(&KeyRange::prefix(CACHED_PREFIX)));
        assert!(!scope.covers(&KeyRange::range(
            "/registry/core/endpoints/",
            "/registry/core/events/default/b"
        )));
        // Its neighbours are held, up to its bounds.
        assert!(scope.holds(b"/registry/core/endpoints/default/a"));
        assert!(scope.holds(b"/registry/core/eventsx"));
        assert!(scope.covers(&KeyRange::prefix("/registry/core/pods/")));
        assert!(scope.covers(&KeyRange::range(
            "/registry/core/endpoints/",
            "/registry/core/events/"
        )));
        assert!(scope.covers(&KeyRange::range(
            "/registry/core/events0",
            "/registry/core/pods/"
        )));
    }

    #[test]
    fn the_held_ranges_leave_out_each_skipped_prefix_once() {
        let scope = Scope::skipping([
            "/registry/core/pods/",
            EVENTS,
            "/registry/core/events/default/",
        ]);
        let ranges: Vec<(String, String)> = scope
            .ranges()
            .into_iter()
            .map(|(s, e)| {
                (
                    String::from_utf8(s).unwrap_or_default(),
                    String::from_utf8(e).unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            ranges,
            [
                ("/registry/", "/registry/core/events/"),
                ("/registry/core/events0", "/registry/core/pods/"),
                ("/registry/core/pods0", "/registry0"),
            ]
            .map(|(s, e)| (s.to_owned(), e.to_owned()))
        );
        for (start, end) in scope.ranges() {
            assert!(scope.covers(&KeyRange::range(start, end)));
        }
    }
}
