//! Coalescing of concurrent writes into shared log entries.
//!
//! Owns [`Proposer`]. openraft appends and fsyncs each client write as its own entry, one
//! after the other, so under concurrency that fsync, the replication round and the per-entry
//! bookkeeping bound the write rate. The proposer keeps at most `max_in_flight` entries in
//! flight; writes that arrive while every slot is taken wait in a queue, and the next entry
//! carries all of them (up to a count and a size) as one [`Op::Batch`]:
//!
//! ```text
//!  writers ─► queue ──(a slot frees)──► one entry: the lone command, or Batch[c1, c2, …]
//!                                            └─► client_write ─► each writer gets its answer
//! ```
//!
//! A writer that finds a free slot and nobody queued is proposed at once from its own task,
//! so a single client pays nothing.
//! It must not interpret the commands: `kv::apply` applies each one of a batch on its own
//! (own revision, own fence), and a failing one leaves the others alone.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use openraft::error::ClientWriteError;
use openraft::error::Fatal;
use openraft::error::RaftError;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::Semaphore;

use crate::kv::op_bytes;
use crate::kv::Command;
use crate::kv::KvError;
use crate::kv::KvResponse;
use crate::kv::Op;
use crate::node::DiskReserve;
use crate::types::ApplyResult;
use crate::types::Raft;
use crate::types::TypeConfig;

/// What proposing one command answered: its applied result, or why Raft did not take it.
pub(crate) type WriteResult =
    Result<ApplyResult, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;

/// Bookkeeping bytes counted per command on top of its keys and values.
const PER_COMMAND_BYTES: usize = 64;

/// How many writes may share an entry, and how big it may get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Entries proposed and not yet applied at any time (at least 1).
    pub max_in_flight: usize,
    /// Commands in one entry (1 disables batching).
    pub max_commands: usize,
    /// Approximate bytes of keys and values in one entry; a single command larger than this
    /// still goes alone.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            // One: the log append no longer holds up openraft's core, so a second entry in
            // flight buys less than the bigger batch that waiting builds (16 clients:
            // ~8,200 against ~7,300 puts/s with two, p99 lower too; docs/benchmarks.md).
            max_in_flight: 1,
            max_commands: 512,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

struct Pending {
    cmd: Command,
    bytes: usize,
    reply: oneshot::Sender<WriteResult>,
}

/// Proposes writes to the local Raft, sharing entries between concurrent writers.
pub(crate) struct Proposer {
    raft: Raft,
    /// Refuses writes while this member leads on a disk below its reserve.
    disk: Arc<DiskReserve>,
    queue: mpsc::UnboundedSender<Pending>,
    /// Writes sent to the queue and not yet taken from it.
    queued: Arc<AtomicUsize>,
    /// One permit per entry that may be in flight.
    slots: Arc<Semaphore>,
}

impl Proposer {
    /// Start the proposing task on the current runtime; it ends when the proposer is dropped.
    pub(crate) fn start(raft: Raft, limits: BatchLimits, disk: Arc<DiskReserve>) -> Arc<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
        tokio::spawn(run(raft.clone(), rx, limits, queued.clone(), slots.clone()));
        Arc::new(Proposer {
            raft,
            disk,
            queue,
            queued,
            slots,
        })
    }

    /// Propose `cmd` and wait until it is applied (or Raft refuses it, e.g. not the leader).
    /// The caller bounds the wait.
    pub(crate) async fn propose(&self, cmd: Command) -> WriteResult {
        // Refused before it is proposed, so nothing is half-done; only by the leader, whose
        // disk takes the write first (a follower forwards or redirects it as usual).
        if let Some(refusal) = self.disk.refusal() {
            let metrics = self.raft.metrics();
            let m = openraft::async_runtime::watch::WatchReceiver::borrow_watched(&metrics);
            if m.current_leader == Some(m.id) {
                return Ok(Err(refusal));
            }
        }
        // Nobody waiting and a slot free: propose it from here, with no hop through the
        // proposing task (a lone writer pays nothing for batching).
        if self.queued.load(Ordering::Acquire) == 0 {
            if let Ok(_slot) = self.slots.clone().try_acquire_owned() {
                return self.raft.client_write(cmd).await.map(|r| r.data);
            }
        }
        let (reply, answer) = oneshot::channel();
        let bytes = op_bytes(&cmd.op) + PER_COMMAND_BYTES;
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.queue.send(Pending { cmd, bytes, reply }).is_err() {
            return Err(RaftError::Fatal(Fatal::Stopped));
        }
        answer
            .await
            .unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
    }
}

async fn run(
    raft: Raft,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    limits: BatchLimits,
    queued: Arc<AtomicUsize>,
    slots: Arc<Semaphore>,
) {
    // A command that did not fit in the previous entry opens the next one.
    let mut carried: Option<Pending> = None;
    let take = |p: Pending| {
        queued.fetch_sub(1, Ordering::AcqRel);
        p
    };
    loop {
        // Wait for a write first, then for a slot: while every slot is busy, writers gather
        // in the queue (and no slot is held idle, so a lone writer finds one free).
        let first = match carried.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => take(p),
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };

        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < limits.max_commands.max(1) {
            let Ok(next) = queue.try_recv().map(take) else {
                break;
            };
            if bytes + next.bytes > limits.max_bytes {
                carried = Some(next);
                break;
            }
            bytes += next.bytes;
            batch.push(next);
        }
        tokio::spawn(write_entry(raft.clone(), batch, slot));
    }
}

/// Propose one entry for `batch` and hand every writer its own answer.
async fn write_entry(raft: Raft, mut batch: Vec<Pending>, _slot: OwnedSemaphorePermit) {
    if batch.len() == 1 {
        if let Some(p) = batch.pop() {
            let result = raft.client_write(p.cmd).await.map(|r| r.data);
            let _ = p.reply.send(result);
        }
        return;
    }
    let count = batch.len();
    let (cmds, replies): (Vec<Command>, Vec<oneshot::Sender<WriteResult>>) =
        batch.into_iter().map(|p| (p.cmd, p.reply)).unzip();
    let entry = Command {
        now_ms: crate::node::now_ms(),
        fence_term: None,
        op: Op::Batch(cmds),
    };
    tracing::trace!(count, "proposing a batch");
    match raft.client_write(entry).await.map(|r| r.data) {
        Ok(Ok(KvResponse::Batch(results))) if results.len() == count => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Ok(other) => {
            // Apply answers a batch with one result per command; anything else is a bug,
            // reported to every writer rather than guessed at.
            let error = KvError::Storage(format!(
                "a batch of {count} commands was answered with {other:?}"
            ));
            for reply in replies {
                let _ = reply.send(Ok(Err(error.clone())));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
