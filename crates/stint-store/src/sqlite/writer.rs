//! The single SQLite writer: one thread owns the write connection and group-commits.
//!
//! SQLite allows one writer at a time and each durable commit costs an fsync, so instead of
//! many connections contending for the write lock, every `apply` is queued to this thread.
//! It drains whatever is queued, runs each change in its own SAVEPOINT inside one
//! transaction (a change whose precondition fails rolls back alone and gets its own error),
//! commits once, and only then replies. Under load, one fsync covers many changes.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use stint_core::error::{Error, Result};
use stint_core::store::Change;
use tokio::sync::oneshot;

use super::write::{self, Head};
use crate::error::{store, StoreError};

/// Bounds one transaction so a flood of writes still commits (and replies) regularly.
const MAX_BATCH: usize = 256;

struct Job {
    change: Change,
    reply: oneshot::Sender<Result<u64>>,
}

pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Writer> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new().name("stint-sqlite-writer".into()).spawn(move || run(conn, queue)).map_err(store)?;
        Ok(Writer { jobs: Some(jobs), thread: Some(thread) })
    }

    pub(super) async fn submit(&self, change: Change) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or_else(|| Error::store(StoreError::WriterStopped))?;
        jobs.send(Job { change, reply }).map_err(|_| Error::store(StoreError::WriterStopped))?;
        answer.await.map_err(|_| Error::store(StoreError::WriterStopped))?
    }
}

impl Drop for Writer {
    /// Closing the queue ends the thread once it has committed what was queued; joining it
    /// closes the connection (checkpointing the WAL) before a reopen of the same file.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("sqlite writer thread panicked");
            }
        }
    }
}

fn run(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (changes, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|j| (j.change, j.reply)).unzip();
        for (reply, result) in replies.into_iter().zip(commit_batch(&mut conn, changes)) {
            // The caller may have given up (its future was dropped); nothing to do then.
            let _ = reply.send(result);
        }
    }
}

/// One result per change, in order. If the shared commit fails, every change fails.
fn commit_batch(conn: &mut Connection, changes: Vec<Change>) -> Vec<Result<u64>> {
    let n = changes.len();
    match try_batch(conn, changes) {
        Ok(results) => results,
        Err(e) => {
            let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string());
            tracing::error!(error = %cause, changes = n, "sqlite group commit failed");
            (0..n).map(|_| Err(Error::store(StoreError::CommitFailed(cause.clone())))).collect()
        }
    }
}

fn try_batch(conn: &mut Connection, changes: Vec<Change>) -> Result<Vec<Result<u64>>> {
    // IMMEDIATE takes the write lock up front, so the head read below cannot go stale
    // even if another process (the CLI) writes to the same file.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store)?;
    let start = write::read_head(&tx)?;
    let mut head = start.clone();
    let mut results = Vec::with_capacity(changes.len());
    for change in changes {
        if change.mutations.is_empty() {
            // Appending audit records has no precondition that can fail alone, so it needs no
            // savepoint (two statements fewer on the hottest path, issuance); if it fails,
            // something is wrong with the database and the whole batch fails.
            head = write::apply(&tx, change, &head)?;
            results.push(Ok(head.0));
        } else {
            let result = run_job(&mut tx, change, &mut head);
            // Some errors (disk full, I/O, out of memory) make SQLite roll back the whole
            // transaction, not just the savepoint: carrying on would run later changes in
            // autocommit mode, outside this batch. Fail the batch instead.
            if result.is_err() && tx.is_autocommit() {
                return Err(store(StoreError::CommitFailed("sqlite rolled back the batch".into())));
            }
            results.push(result);
        }
    }
    if head.0 != start.0 {
        write::write_head(&tx, &head)?;
    }
    tx.commit().map_err(store)?;
    Ok(results)
}

/// Runs one change in a savepoint; the head advances only if the savepoint is released.
fn run_job(tx: &mut Transaction<'_>, change: Change, head: &mut Head) -> Result<u64> {
    let sp = tx.savepoint().map_err(store)?;
    // On error `sp` is dropped, which rolls back this change alone.
    let next = write::apply(&sp, change, head)?;
    sp.commit().map_err(store)?;
    *head = next;
    Ok(head.0)
}
