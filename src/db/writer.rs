//! Group commit: every revoking write of this instance (logout, logout-all
//! and the other sweeps, RFC 7009, a session's delete, refresh rotation)
//! goes through one writer task, which commits them in batches.
//!
//! A write that finds the writer idle goes at once, alone: no write ever
//! waits for company. While a batch's commit is in flight the writes that
//! arrive queue, and the next batch takes them all (at most [`MAX_BATCH`]),
//! in one transaction and one commit: one WAL flush (or one SQLite fsync) for
//! the lot, and on Postgres one statement for all its logouts. Each caller
//! is answered after the commit that holds its write, with its own outcome:
//! if a batch fails for anything but an unreachable database, each of its
//! writes is run again alone, so one failing write never fails its
//! neighbours. The queue is bounded ([`QUEUE`]): beyond it callers wait
//! their turn to enqueue, and memory stays bounded whatever clients send.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rocket::tokio::sync::{mpsc, oneshot};

use super::model::Listed;
use super::{
    Backend, DbError, Reason, Revocation, Rotation, RotationOutcome, SessionId, SessionSweep, TokenId, UserId,
};

/// The most writes one batch commits. Enough to share each commit among
/// every connection a benchmark or a busy proxy holds open; small enough
/// that one batch's statement stays short and its locks brief.
pub const MAX_BATCH: usize = 64;

/// Writes that may wait for the writer; further callers wait to enqueue.
const QUEUE: usize = 4096;

/// One revoking write, with the instant it was asked for.
#[derive(Debug, Clone)]
pub(super) enum Write {
    /// Logout: the presented token's whole session, listed until the later
    /// of its newest refresh token's expiry and the token's own
    /// (`token_expires_at`, all there is if the session's row is gone). The
    /// token needs no row of its own: its session's refuses it for as long.
    Logout { sid: SessionId, user_id: UserId, token_expires_at: DateTime<Utc>, now: DateTime<Utc> },
    /// One token, unless it or its session is listed already.
    Token { sid: Option<SessionId>, token: Revocation, now: DateTime<Utc> },
    /// One live session of the user's (given `refresh_jti`, only if that is
    /// its current refresh token).
    EndSession {
        user_id: UserId,
        sid: SessionId,
        refresh_jti: Option<TokenId>,
        reason: Reason,
        now: DateTime<Utc>,
    },
    /// Every session of the user but one (`cutoff`: expired before it means
    /// unusable).
    Sweep { sweep: SessionSweep, now: DateTime<Utc>, cutoff: DateTime<Utc> },
    /// A refresh-token rotation.
    Rotate(Rotation),
}

/// What one write did.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The rows it put on (or extended in) the blocklist, for memory.
    pub listed: Vec<Listed>,
    /// A sweep: how many of the sessions it ended were live.
    pub live: u64,
    /// A rotation: whether it rotated (else the session ended as reused).
    pub rotated: bool,
    /// A rotation: the user's name, `None` if the user is gone (and then
    /// the rotation changed nothing).
    pub username: Option<String>,
}

impl Written {
    pub(super) fn listed(listed: Vec<Listed>) -> Written {
        Written { listed, ..Written::default() }
    }

    /// A rotation's outcome, as the caller sees it.
    pub(super) fn rotation(self) -> RotationOutcome {
        match (self.rotated, self.username) {
            (_, None) => RotationOutcome::UserGone,
            (true, Some(username)) => RotationOutcome::Rotated { username },
            (false, Some(_)) => RotationOutcome::Reused,
        }
    }
}

/// The writer as its callers see it: a queue and the writer's counters.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    state: Arc<State>,
    /// What the writer commits to, to close at shutdown.
    backend: Backend,
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written, DbError>>,
}

/// The writer's counters ([`WriterStatus`]) and the tests' hold.
#[derive(Default)]
struct State {
    queued: AtomicUsize,
    in_flight: AtomicUsize,
    batches: AtomicU64,
    writes: AtomicU64,
    last_batch: AtomicUsize,
    largest_batch: AtomicUsize,
    retried_alone: AtomicU64,
    #[cfg(feature = "test-hooks")]
    held: rocket::tokio::sync::watch::Sender<bool>,
}

/// What the writer has done, for tests, `/health` and the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStatus {
    /// Writes waiting for a batch right now.
    pub queued: usize,
    /// Writes in the batch being committed right now.
    pub in_flight: usize,
    /// Batches committed (or failed) so far.
    pub batches: u64,
    /// Writes those batches held.
    pub writes: u64,
    /// How many writes the latest batch held.
    pub last_batch: usize,
    /// The most any batch held (never above [`MAX_BATCH`]).
    pub largest_batch: usize,
    /// Writes run again alone because their batch failed.
    pub retried_alone: u64,
}

impl Writer {
    /// Starts the writer task on `backend`; it ends when the last store
    /// holding this writer is dropped.
    pub(super) fn start(backend: Backend, timeout: Duration) -> Writer {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let state = Arc::new(State::default());
        rocket::tokio::spawn(run(backend.clone(), timeout, queue, state.clone()));
        Writer { jobs, state, backend }
    }

    /// Closes the writer's connections: every later write fails as
    /// unavailable.
    pub(super) async fn close(&self) {
        self.backend.close().await;
    }

    /// Queues `write` and waits for the commit that holds it.
    pub(super) async fn write(&self, write: Write) -> Result<Written, DbError> {
        let (reply, answer) = oneshot::channel();
        self.state.queued.fetch_add(1, Ordering::Relaxed);
        if self.jobs.send(Job { write, reply }).await.is_err() {
            self.state.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    pub(super) fn status(&self) -> WriterStatus {
        let state = &self.state;
        WriterStatus {
            queued: state.queued.load(Ordering::Relaxed),
            in_flight: state.in_flight.load(Ordering::Relaxed),
            batches: state.batches.load(Ordering::Relaxed),
            writes: state.writes.load(Ordering::Relaxed),
            last_batch: state.last_batch.load(Ordering::Relaxed),
            largest_batch: state.largest_batch.load(Ordering::Relaxed),
            retried_alone: state.retried_alone.load(Ordering::Relaxed),
        }
    }

    /// Test hook: while `held`, the writer starts no batch (writes queue,
    /// as they would behind a slow commit).
    #[cfg(feature = "test-hooks")]
    pub(super) fn hold(&self, held: bool) {
        self.state.held.send_replace(held);
    }
}

/// The writer task: take what is queued (at least one write, at most
/// [`MAX_BATCH`]), commit it, answer, repeat.
async fn run(backend: Backend, timeout: Duration, mut queue: mpsc::Receiver<Job>, state: Arc<State>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        #[cfg(feature = "test-hooks")]
        wait_while_held(&state).await;
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        state.in_flight.store(batch.len(), Ordering::Relaxed);
        state.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        state.last_batch.store(batch.len(), Ordering::Relaxed);
        state.largest_batch.fetch_max(batch.len(), Ordering::Relaxed);
        let (writes, replies): (Vec<Write>, Vec<_>) =
            batch.drain(..).map(|job| (job.write, job.reply)).unzip();
        let outcomes = commit(&backend, timeout, &writes, &state).await;
        state.batches.fetch_add(1, Ordering::Relaxed);
        crate::metrics::write_batch(writes.len());
        state.writes.fetch_add(writes.len() as u64, Ordering::Relaxed);
        state.in_flight.store(0, Ordering::Relaxed);
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that gave up (its request was dropped) is not waiting.
            let _ = reply.send(outcome);
        }
    }
}

/// Commits `writes` together; if that fails for anything but an unreachable
/// database, runs each alone, so each gets its own outcome.
async fn commit(
    backend: &Backend,
    timeout: Duration,
    writes: &[Write],
    state: &State,
) -> Vec<Result<Written, DbError>> {
    match write_batch(backend, timeout, writes).await {
        Ok(written) => written.into_iter().map(Ok).collect(),
        Err(error) if writes.len() > 1 && !error.is_unavailable() => {
            log::warn!("a batch of {} revoking writes failed ({error}); running each alone", writes.len());
            state.retried_alone.fetch_add(writes.len() as u64, Ordering::Relaxed);
            let mut outcomes = Vec::with_capacity(writes.len());
            for write in writes {
                let alone = write_batch(backend, timeout, std::slice::from_ref(write)).await;
                outcomes.push(alone.map(|mut written| written.pop().unwrap_or_default()));
            }
            outcomes
        }
        Err(error) if writes.len() == 1 => vec![Err(error)],
        Err(error) => writes.iter().map(|_| Err(error.again())).collect(),
    }
}

/// One transaction for `writes`, bounded by `timeout`.
async fn write_batch(
    backend: &Backend,
    timeout: Duration,
    writes: &[Write],
) -> Result<Vec<Written>, DbError> {
    let work = async {
        match backend {
            Backend::Postgres(pool) => super::postgres::write_batch(pool, writes).await,
            Backend::Sqlite(pool) => super::sqlite::write_batch(pool, writes).await,
        }
    };
    rocket::tokio::time::timeout(timeout, work).await.unwrap_or(Err(DbError::Timeout))
}

fn stopped() -> DbError {
    DbError::Unavailable(sqlx::Error::PoolClosed)
}

#[cfg(feature = "test-hooks")]
async fn wait_while_held(state: &State) {
    let _ = state.held.subscribe().wait_for(|held| !*held).await;
}
