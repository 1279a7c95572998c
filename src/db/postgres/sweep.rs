//! Session sweeps (logout-all, `scope=others`, a password change) on
//! Postgres: the sweeps of a whole batch in one round trip.
//!
//! For each user: lock the user's row, count the sweep in its
//! `session_generation` (which refuses the sessions of logins still checking
//! the password: see `insert_session`) and change the password if asked,
//! then end every live session of the user but the one kept, and list them
//! all. Several statements in one simple query, which Postgres runs with a
//! snapshot per statement: the locks (taken in id order, so two batches never
//! deadlock on them) wait for any login whose session insert (holding a
//! key-share lock on the user row until it commits) is in flight, and only
//! the statements after the wait see that session. A login that comes after
//! waits for this commit instead, and signs its tokens only once its own
//! session row has committed. The simple protocol takes no parameters, so
//! the values are inlined as quoted literals (ids and times are typed; the
//! one string a caller supplies, the password hash, is quoted by
//! [`literal`]).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, Row};

use super::revoke::{list_wanted, listed, ListedRow};
use crate::db::model::SessionSweep;
use crate::db::writer::Written;
use crate::db::DbError;

/// One sweep of a batch: what to sweep, when it was asked, and the cutoff
/// (sessions expired before it are not live).
pub(super) type Sweep<'a> = (&'a SessionSweep, DateTime<Utc>, DateTime<Utc>);

/// Runs `sweeps` (of distinct users) in one simple query; returns what each
/// did. They share one instant (the latest they were asked at): each
/// sweep's cutoff keeps its distance from it.
pub(super) async fn sweep_sessions(
    conn: &mut PgConnection,
    sweeps: &[Sweep<'_>],
) -> Result<Vec<Written>, DbError> {
    let Some(now) = sweeps.iter().map(|(_, now, _)| *now).max() else {
        return Ok(Vec::new());
    };
    let sql = sweep_sql(sweeps, now);
    let rows = sqlx::Executor::fetch_all(conn, sql.as_str()).await?;
    // The locks' one-column rows first, then the listed rows with their user.
    let mut listed_rows = Vec::with_capacity(rows.len());
    for row in rows.iter().filter(|row| row.len() == 5) {
        let (jti, until_ms, reason, new, user_id) =
            <(Option<uuid::Uuid>, Option<i64>, Option<String>, Option<bool>, Option<uuid::Uuid>)>::from_row(
                row,
            )?;
        let row: ListedRow = (jti, until_ms, reason, new);
        listed_rows.push((row, user_id));
    }
    // A session a DBA had already revoked by hand was not live.
    let now_ms = now.timestamp_millis();
    let mut written: Vec<Written> = sweeps
        .iter()
        .map(|(sweep, _, _)| {
            let live = listed_rows.iter().filter(|(row, user)| {
                *user == Some(sweep.user_id.0)
                    && row.3 == Some(true)
                    && row.1.is_some_and(|until| until > now_ms)
            });
            Written { live: live.count() as u64, ..Written::default() }
        })
        .collect();
    // Every listed row goes to memory once, whoever's it is (a row a DBA
    // listed by hand has no user).
    if let Some(first) = written.first_mut() {
        first.listed = listed_rows.into_iter().filter_map(|(row, _)| listed(row)).collect();
    }
    Ok(written)
}

fn sweep_sql(sweeps: &[Sweep<'_>], now: DateTime<Utc>) -> String {
    let timestamp = |time: DateTime<Utc>| {
        format!("'{}'::timestamptz", time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    };
    let uuid = |id: uuid::Uuid| format!("'{id}'::uuid");
    let mut users = Vec::with_capacity(sweeps.len());
    let mut passwords = Vec::with_capacity(sweeps.len());
    let mut batch = Vec::with_capacity(sweeps.len());
    for (sweep, asked, cutoff) in sweeps {
        let user = uuid(sweep.user_id.0);
        let hash = sweep.new_password_hash.as_deref().map_or_else(|| "NULL".to_owned(), literal);
        let keep = sweep.keep.map_or_else(|| "NULL".to_owned(), |sid| uuid(sid.0));
        passwords.push(format!("({user}, {hash}::text)"));
        batch.push(format!(
            "({user}, {keep}::uuid, {}::text, {})",
            literal(sweep.reason.as_str()),
            timestamp(now - (*asked - *cutoff))
        ));
        users.push(user);
    }
    let now = timestamp(now);
    format!(
        "SELECT 1 FROM users WHERE id IN ({users}) ORDER BY id FOR UPDATE;
         UPDATE users u SET session_generation = u.session_generation + 1,
                            password_hash = coalesce(b.hash, u.password_hash)
         FROM (VALUES {passwords}) AS b (id, hash) WHERE u.id = b.id;
         WITH batch (user_id, keep, reason, cutoff) AS (VALUES {batch}),
         ended AS (
             UPDATE sessions s SET revoked_at = {now}, refresh_jti = NULL FROM batch b
             WHERE s.user_id = b.user_id AND s.revoked_at IS NULL AND s.expires_at > b.cutoff
               AND s.id IS DISTINCT FROM b.keep
             RETURNING s.id, s.expires_at, b.reason, b.user_id),
         wanted (jti, expires_at, reason, user_id) AS (SELECT id, expires_at, reason, user_id FROM ended)
         {}, r.user_id",
        list_wanted("w.user_id", &now, &format!("r.revoked_at = {now}")),
        users = users.join(", "),
        passwords = passwords.join(", "),
        batch = batch.join(", "),
    )
}

/// A string as a Postgres literal (standard_conforming_strings, the default
/// since 9.1: only the quote itself is doubled).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
