//! The newest Raft log entries kept in memory, so reading back what was just appended
//! (the leader replicating it, any member applying it) does not go to RocksDB.
//!
//! Owns [`RecentLog`]. It holds a contiguous run of entries that always ends at the last
//! entry of the log, or nothing: whoever appends, truncates or purges the log must do the
//! same here. It must not do I/O; a read it cannot answer entirely returns `None` and the
//! caller reads RocksDB.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::types::Entry;

/// A bounded, contiguous tail of the log.
pub(crate) struct RecentLog {
    tail: Mutex<Tail>,
    max_entries: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Tail {
    /// Entries with their encoded size, in index order, without holes.
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Tail {
    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|(e, _)| e.log_id.index)
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

impl RecentLog {
    /// Keep at most `max_entries` entries and about `max_bytes` of encoded entries (the
    /// newest entry stays even if larger).
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        RecentLog {
            tail: Mutex::new(Tail::default()),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record entries just appended to the log (in index order), each with its encoded size.
    pub(crate) fn appended(&self, entries: Vec<(Entry, usize)>) {
        let mut tail = self.lock();
        for (entry, size) in entries {
            let index = entry.log_id.index;
            // Anything but the next index means the log moved without us (a restart, an
            // installed snapshot): start again from here rather than keep a hole.
            if tail
                .last_index()
                .is_some_and(|last| last.checked_add(1) != Some(index))
            {
                tail.clear();
            }
            tail.bytes += size;
            tail.entries.push_back((entry, size));
        }
        while tail.entries.len() > self.max_entries
            || (tail.bytes > self.max_bytes && tail.entries.len() > 1)
        {
            if let Some((_, size)) = tail.entries.pop_front() {
                tail.bytes -= size;
            }
        }
    }

    /// The log was truncated: entries from `from` on are gone.
    pub(crate) fn truncated_from(&self, from: u64) {
        let mut tail = self.lock();
        while tail.last_index().is_some_and(|last| last >= from) {
            if let Some((_, size)) = tail.entries.pop_back() {
                tail.bytes -= size;
            }
        }
    }

    /// The log was purged: entries up to and including `through` are gone.
    pub(crate) fn purged_through(&self, through: u64) {
        let mut tail = self.lock();
        while tail.first_index().is_some_and(|first| first <= through) {
            if let Some((_, size)) = tail.entries.pop_front() {
                tail.bytes -= size;
            }
        }
    }

    /// Entries with index in `start..end` (`end = None`: to the end of the log), if this tail
    /// holds all of them; `None` when the read must go to the database.
    pub(crate) fn get(&self, start: u64, end: Option<u64>) -> Option<Vec<Entry>> {
        let tail = self.lock();
        let first = tail.first_index()?;
        if start < first {
            return None;
        }
        let skip = usize::try_from(start - first).ok()?;
        let wanted = end.map_or(usize::MAX, |end| {
            usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX)
        });
        Some(
            tail.entries
                .iter()
                .skip(skip)
                .take(wanted)
                .map(|(e, _)| e.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;

    use super::*;
    use crate::types::LogId;

    fn entry(index: u64) -> (Entry, usize) {
        let log_id = LogId {
            leader_id: openraft::impls::leader_id_adv::LeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        };
        (
            Entry {
                log_id,
                payload: EntryPayload::Blank,
            },
            10,
        )
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn answers_only_reads_it_holds_entirely() {
        let log = RecentLog::new(100, 1 << 20);
        assert_eq!(indexes(log.get(1, None)), None, "empty");
        log.appended((5..=9).map(entry).collect());
        assert_eq!(indexes(log.get(5, Some(8))), Some(vec![5, 6, 7]));
        assert_eq!(indexes(log.get(7, None)), Some(vec![7, 8, 9]));
        // Past the end of the log: nothing there, as in the database.
        assert_eq!(indexes(log.get(8, Some(20))), Some(vec![8, 9]));
        assert_eq!(indexes(log.get(10, None)), Some(vec![]));
        // Before the tail: the database must answer.
        assert_eq!(indexes(log.get(4, Some(6))), None);
    }

    #[test]
    fn follows_truncation_purge_and_jumps() {
        let log = RecentLog::new(100, 1 << 20);
        log.appended((1..=6).map(entry).collect());
        log.truncated_from(5);
        assert_eq!(indexes(log.get(1, None)), Some(vec![1, 2, 3, 4]));
        log.purged_through(2);
        assert_eq!(indexes(log.get(3, None)), Some(vec![3, 4]));
        assert_eq!(indexes(log.get(2, None)), None);
        // A jump (e.g. after a snapshot) drops the old run instead of leaving a hole.
        log.appended(vec![entry(20)]);
        assert_eq!(indexes(log.get(20, None)), Some(vec![20]));
        assert_eq!(indexes(log.get(4, None)), None);
    }

    #[test]
    fn keeps_the_newest_within_its_bounds() {
        let log = RecentLog::new(3, 1 << 20);
        log.appended((1..=5).map(entry).collect());
        assert_eq!(indexes(log.get(3, None)), Some(vec![3, 4, 5]));
        assert_eq!(indexes(log.get(2, None)), None);
        let by_bytes = RecentLog::new(100, 25);
        by_bytes.appended((1..=5).map(entry).collect());
        assert_eq!(indexes(by_bytes.get(4, None)), Some(vec![4, 5]));
    }
}
