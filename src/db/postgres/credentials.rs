//! The Postgres side of `db/credentials.rs`: the keys' lock (a
//! transaction-level advisory lock), the rows of `signing_keys` and
//! `clients`, and the steps a key's lifecycle is made of.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use crate::db::credentials::{ClientRow, Credentials, NewSigningKey, SigningKeyRow};
use crate::db::DbError;

/// Key of the advisory lock that serialises key changes ("jwtblkey").
const KEYS_LOCK_KEY: i64 = 0x6a77_7462_6c6b_6579;

type Tx = Transaction<'static, Postgres>;

const SELECT_KEYS: &str = "SELECT kid, alg, public_jwk::text AS public_jwk, sealed_private, created_at,
                                  signs_from, retired_at, published_until, revoked_at
                           FROM signing_keys ORDER BY created_at, kid";

pub(in crate::db) async fn lock(pool: &PgPool) -> Result<Tx, DbError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(KEYS_LOCK_KEY).execute(&mut *tx).await?;
    Ok(tx)
}

pub(in crate::db) async fn keys(tx: &mut Tx) -> Result<Vec<SigningKeyRow>, DbError> {
    Ok(sqlx::query_as(SELECT_KEYS).fetch_all(&mut **tx).await?)
}

pub(in crate::db) async fn insert_key(
    tx: &mut Tx,
    key: &NewSigningKey,
    signs_from: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private, signs_from)
         VALUES ($1, $2, $3::jsonb, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.public_jwk)
    .bind(&key.sealed_private)
    .bind(signs_from)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(in crate::db) async fn retire_key(
    tx: &mut Tx,
    kid: &str,
    at: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE signing_keys SET retired_at = $2, published_until = $3 WHERE kid = $1")
        .bind(kid)
        .bind(at.map(|(retired, _)| retired))
        .bind(at.map(|(_, published)| published))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(in crate::db) async fn revoke_key(tx: &mut Tx, kid: &str, at: DateTime<Utc>) -> Result<(), DbError> {
    sqlx::query("UPDATE signing_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL")
        .bind(kid)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The version first: a change that commits after it is read again when the
/// follower sees the version move.
pub(in crate::db) async fn credentials(pool: &PgPool) -> Result<Credentials, DbError> {
    let mut conn = pool.acquire().await?;
    let version = sqlx::query_scalar("SELECT version FROM credentials_version").fetch_one(&mut *conn).await?;
    let keys: Vec<SigningKeyRow> = sqlx::query_as(SELECT_KEYS).fetch_all(&mut *conn).await?;
    let clients: Vec<(String, Vec<u8>, DateTime<Utc>)> =
        sqlx::query_as("SELECT name, secret_hash, created_at FROM clients ORDER BY name")
            .fetch_all(&mut *conn)
            .await?;
    Ok(Credentials {
        version,
        keys,
        clients: clients
            .into_iter()
            .map(|(name, secret_hash, created_at)| ClientRow { name, secret_hash, created_at })
            .collect(),
    })
}

pub(in crate::db) async fn add_client(pool: &PgPool, name: &str, secret_hash: &[u8]) -> Result<(), DbError> {
    sqlx::query("INSERT INTO clients (name, secret_hash) VALUES ($1, $2)")
        .bind(name)
        .bind(secret_hash)
        .execute(pool)
        .await?;
    Ok(())
}

pub(in crate::db) async fn remove_client(pool: &PgPool, name: &str) -> Result<bool, DbError> {
    let removed = sqlx::query("DELETE FROM clients WHERE name = $1").bind(name).execute(pool).await?;
    Ok(removed.rows_affected() == 1)
}
