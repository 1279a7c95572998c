//! A batch of the writer's (group commit, `db/writer.rs`) on Postgres. Its
//! logouts are one statement, its RFC 7009 token revocations another (each
//! write a row of the statement's arrays, through `unnest`), its refresh
//! rotations a third (`rotate.rs`), its sweeps one simple query
//! (`sweep.rs`), each session delete its own statement (`revoke.rs`), and
//! all of it one commit. A user's second sweep, or a session's second
//! rotation, in one batch runs after the first, alone: one statement may
//! change a row only once, and the second must see the first. A batch
//! that needs one statement (a write alone, or only logouts, say) runs it as
//! its own transaction: one round trip, no BEGIN or COMMIT around it.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::PgConnection;
use uuid::Uuid;

use super::revoke::{end_session, list_new, list_wanted, listed, ListedRow};
use super::rotate::rotate_refresh;
use super::sweep::sweep_sessions;
use crate::db::model::Listed;
use crate::db::writer::{Write, Written};
use crate::db::{DbError, Reason};

pub(in crate::db) async fn write_batch(pool: &PgPool, writes: &[Write]) -> Result<Vec<Written>, DbError> {
    let logouts = Logouts::of(writes);
    let tokens = Tokens::of(writes);
    let sweeps = Together::of(writes, |write| match write {
        Write::Sweep { sweep, .. } => Some(sweep.user_id.0),
        _ => None,
    });
    let rotations = Together::of(writes, |write| match write {
        Write::Rotate(rotation) => Some(rotation.sid.0),
        _ => None,
    });
    let others = writes.iter().filter(|write| matches!(write, Write::EndSession { .. }));
    let statements = usize::from(!logouts.is_empty())
        + usize::from(!tokens.is_empty())
        + sweeps.statements()
        + rotations.statements()
        + others.count();
    if statements == 1 {
        let mut conn = pool.acquire().await?;
        return write_all(&mut conn, writes, logouts, tokens, sweeps, rotations).await;
    }
    let mut tx = pool.begin().await?;
    let written = write_all(&mut tx, writes, logouts, tokens, sweeps, rotations).await?;
    tx.commit().await?;
    Ok(written)
}

/// Every write of the batch on `conn`, in the batch's order of answers.
async fn write_all(
    conn: &mut PgConnection,
    writes: &[Write],
    logouts: Logouts,
    tokens: Tokens,
    sweeps: Together,
    rotations: Together,
) -> Result<Vec<Written>, DbError> {
    let mut logged_out = logouts.run(conn).await?.into_iter();
    let mut revoked = tokens.run(conn).await?.into_iter();
    let together: Vec<_> = sweeps
        .at
        .iter()
        .filter_map(|&at| match &writes[at] {
            Write::Sweep { sweep, now, cutoff } => Some((sweep, *now, *cutoff)),
            _ => None,
        })
        .collect();
    let mut swept = sweep_sessions(conn, &together).await?.into_iter();
    let together: Vec<_> = rotations
        .at
        .iter()
        .filter_map(|&at| match &writes[at] {
            Write::Rotate(rotation) => Some(rotation),
            _ => None,
        })
        .collect();
    let mut rotated = rotate_refresh(conn, &together).await?.into_iter();
    let mut written = Vec::with_capacity(writes.len());
    for (at, write) in writes.iter().enumerate() {
        written.push(match write {
            Write::Logout { .. } => logged_out.next().unwrap_or_default(),
            Write::Token { .. } => revoked.next().unwrap_or_default(),
            Write::EndSession { user_id, sid, refresh_jti, reason, now } => {
                Written::listed(end_session(conn, *user_id, *sid, *refresh_jti, *reason, *now).await?)
            }
            Write::Sweep { .. } if sweeps.at.contains(&at) => swept.next().unwrap_or_default(),
            Write::Sweep { sweep, now, cutoff } => {
                sweep_sessions(conn, &[(sweep, *now, *cutoff)]).await?.pop().unwrap_or_default()
            }
            Write::Rotate(_) if rotations.at.contains(&at) => rotated.next().unwrap_or_default(),
            Write::Rotate(rotation) => rotate_refresh(conn, &[rotation]).await?.pop().unwrap_or_default(),
        });
    }
    Ok(written)
}

/// The logouts of a batch: end every session named and list it, each row
/// with its own user and instant, kept until the later of the session's
/// newest refresh token's expiry and the logged-out token's (all there is
/// if the session's row is gone). The tokens get no rows: their sessions'
/// refuse them. A session named twice (two logouts of one session in one
/// batch) is listed once, with the later expiry: one statement may not
/// change a row twice.
///
/// Several logouts insert their rows ([`list_new`]): a session listed
/// already (by another instance, a DBA, or a logout with another of its
/// tokens, just now) fails the batch, whose writes then run again alone.
/// A logout alone extends a row listed already ([`list_wanted`]).
static LOG_OUT: LazyLock<String> = LazyLock::new(|| log_out(&list_new("w.user_id", "w.now")));
static LOG_OUT_ALONE: LazyLock<String> =
    LazyLock::new(|| log_out(&list_wanted("w.user_id", "w.now", "NULL::boolean")));

fn log_out(listing: &str) -> String {
    format!(
        "WITH batch (sid, token_expires_at, user_id, now) AS (
             SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::timestamptz[])),
         ended AS (
             UPDATE sessions s SET revoked_at = COALESCE(s.revoked_at, b.now), refresh_jti = NULL
             FROM (SELECT DISTINCT ON (sid) sid, now FROM batch ORDER BY sid, now) AS b
             WHERE s.id = b.sid RETURNING s.id, s.expires_at),
         wanted (jti, expires_at, reason, user_id, now) AS (
             SELECT DISTINCT ON (b.sid) b.sid, GREATEST(e.expires_at, b.token_expires_at), '{}', b.user_id, b.now
             FROM batch b LEFT JOIN ended e ON e.id = b.sid
             ORDER BY b.sid, 2 DESC)
         {listing}",
        Reason::Logout.as_str(),
    )
}

/// The RFC 7009 revocations of a batch: list each token unless it or its
/// session (when known: `sid` may be NULL) is listed already. A token named
/// twice is listed once.
static LIST_UNLESS_LISTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH batch (sid, jti, token_expires_at, user_id, reason, now) AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::uuid[], $5::text[],
                                  $6::timestamptz[])),
         wanted (jti, expires_at, reason, user_id, now) AS (
             SELECT DISTINCT ON (b.jti) b.jti, b.token_expires_at, b.reason, b.user_id, b.now FROM batch b
             WHERE NOT EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = b.jti OR r.jti = b.sid)
             ORDER BY b.jti, b.token_expires_at DESC)
         {}",
        list_wanted("w.user_id", "w.now", "NULL::boolean")
    )
});

/// The writes of one kind in a batch that go together in one statement:
/// the first for each key (a sweep's user, a rotation's session); the
/// others each run alone after it.
struct Together {
    /// Where in the batch those that go together are.
    at: Vec<usize>,
    alone: usize,
}

impl Together {
    fn of(writes: &[Write], key: impl Fn(&Write) -> Option<Uuid>) -> Together {
        let mut keys = Vec::new();
        let mut together = Together { at: Vec::new(), alone: 0 };
        for (at, write) in writes.iter().enumerate() {
            let Some(key) = key(write) else { continue };
            if keys.contains(&key) {
                together.alone += 1;
            } else {
                keys.push(key);
                together.at.push(at);
            }
        }
        together
    }

    /// Round trips: one for those together, one for each alone.
    fn statements(&self) -> usize {
        usize::from(!self.at.is_empty()) + self.alone
    }
}

/// The logouts of a batch, as [`LOG_OUT`]'s parameters: one array per
/// column, in the batch's order.
#[derive(Default)]
struct Logouts {
    sid: Vec<Uuid>,
    token_expires_at: Vec<DateTime<Utc>>,
    user_id: Vec<Uuid>,
    now: Vec<DateTime<Utc>>,
}

impl Logouts {
    fn of(writes: &[Write]) -> Logouts {
        let mut columns = Logouts::default();
        for write in writes {
            if let Write::Logout { sid, user_id, token_expires_at, now } = write {
                columns.sid.push(sid.0);
                columns.token_expires_at.push(*token_expires_at);
                columns.user_id.push(user_id.0);
                columns.now.push(*now);
            }
        }
        columns
    }

    fn is_empty(&self) -> bool {
        self.sid.is_empty()
    }

    /// Runs [`LOG_OUT`] (nothing if there are no logouts); returns what
    /// each listed: its session's row.
    async fn run(self, conn: &mut PgConnection) -> Result<Vec<Written>, DbError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let sids = self.sid.clone();
        let statement = if sids.len() == 1 { &LOG_OUT_ALONE } else { &LOG_OUT };
        let rows: Vec<ListedRow> = sqlx::query_as(statement.as_str())
            .bind(self.sid)
            .bind(self.token_expires_at)
            .bind(self.user_id)
            .bind(self.now)
            .fetch_all(conn)
            .await?;
        Ok(each_own(rows, sids))
    }
}

/// The RFC 7009 revocations of a batch, as [`LIST_UNLESS_LISTED`]'s
/// parameters: one array per column, in the batch's order.
#[derive(Default)]
struct Tokens {
    sid: Vec<Option<Uuid>>,
    jti: Vec<Uuid>,
    token_expires_at: Vec<DateTime<Utc>>,
    user_id: Vec<Option<Uuid>>,
    reason: Vec<&'static str>,
    now: Vec<DateTime<Utc>>,
}

impl Tokens {
    fn of(writes: &[Write]) -> Tokens {
        let mut columns = Tokens::default();
        for write in writes {
            if let Write::Token { sid, token, now } = write {
                columns.sid.push(sid.map(|sid| sid.0));
                columns.jti.push(token.jti.0);
                columns.token_expires_at.push(token.expires_at);
                columns.user_id.push(token.user_id.map(|id| id.0));
                columns.reason.push(token.reason.as_str());
                columns.now.push(*now);
            }
        }
        columns
    }

    fn is_empty(&self) -> bool {
        self.jti.is_empty()
    }

    /// Runs [`LIST_UNLESS_LISTED`] (nothing if there are none); returns
    /// what each listed: its token's row, or nothing.
    async fn run(self, conn: &mut PgConnection) -> Result<Vec<Written>, DbError> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        let jtis = self.jti.clone();
        let rows: Vec<ListedRow> = sqlx::query_as(LIST_UNLESS_LISTED.as_str())
            .bind(self.sid)
            .bind(self.jti)
            .bind(self.token_expires_at)
            .bind(self.user_id)
            .bind(self.reason)
            .bind(self.now)
            .fetch_all(conn)
            .await?;
        Ok(each_own(rows, jtis))
    }
}

/// What each write of a statement listed: the rows with its id, in the
/// order of `ids` (one per write).
fn each_own(rows: Vec<ListedRow>, ids: Vec<Uuid>) -> Vec<Written> {
    let listed: Vec<Listed> = rows.into_iter().filter_map(listed).collect();
    let own = |id: Uuid| listed.iter().filter(|row| row.id == id).cloned().collect();
    ids.into_iter().map(|id| Written::listed(own(id))).collect()
}
