//! The SQLite side of `db/credentials.rs`: the keys' lock (the write lock,
//! taken by `BEGIN IMMEDIATE`), the rows of `signing_keys` and `clients`,
//! and the steps a key's lifecycle is made of.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqlitePool;
use sqlx::{Sqlite, Transaction};

use super::{parse_time, text};
use crate::db::credentials::{ClientRow, Credentials, NewSigningKey, SigningKeyRow};
use crate::db::DbError;

type Tx = Transaction<'static, Sqlite>;

type KeyRow =
    (String, String, String, Vec<u8>, String, String, Option<String>, Option<String>, Option<String>);

const SELECT_KEYS: &str = "SELECT kid, alg, public_jwk, sealed_private, created_at, signs_from,
                                  retired_at, published_until, revoked_at
                           FROM signing_keys ORDER BY julianday(created_at), kid";

fn key_from_row(row: KeyRow) -> Result<SigningKeyRow, DbError> {
    let (
        kid,
        alg,
        public_jwk,
        sealed_private,
        created_at,
        signs_from,
        retired_at,
        published_until,
        revoked_at,
    ) = row;
    let optional = |time: Option<String>| time.as_deref().map(parse_time).transpose();
    Ok(SigningKeyRow {
        kid,
        alg,
        public_jwk,
        sealed_private,
        created_at: parse_time(&created_at)?,
        signs_from: parse_time(&signs_from)?,
        retired_at: optional(retired_at)?,
        published_until: optional(published_until)?,
        revoked_at: optional(revoked_at)?,
    })
}

pub(in crate::db) async fn lock(pool: &SqlitePool) -> Result<Tx, DbError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

pub(in crate::db) async fn keys(tx: &mut Tx) -> Result<Vec<SigningKeyRow>, DbError> {
    let rows: Vec<KeyRow> = sqlx::query_as(SELECT_KEYS).fetch_all(&mut **tx).await?;
    rows.into_iter().map(key_from_row).collect()
}

pub(in crate::db) async fn insert_key(
    tx: &mut Tx,
    key: &NewSigningKey,
    signs_from: DateTime<Utc>,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private, created_at, signs_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.public_jwk)
    .bind(&key.sealed_private)
    .bind(text(Utc::now()))
    .bind(text(signs_from))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(in crate::db) async fn retire_key(
    tx: &mut Tx,
    kid: &str,
    at: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE signing_keys SET retired_at = ?2, published_until = ?3 WHERE kid = ?1")
        .bind(kid)
        .bind(at.map(|(retired, _)| text(retired)))
        .bind(at.map(|(_, published)| text(published)))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(in crate::db) async fn revoke_key(tx: &mut Tx, kid: &str, at: DateTime<Utc>) -> Result<(), DbError> {
    sqlx::query("UPDATE signing_keys SET revoked_at = ?2 WHERE kid = ?1 AND revoked_at IS NULL")
        .bind(kid)
        .bind(text(at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One read transaction: the version and the rows it stands for.
pub(in crate::db) async fn credentials(pool: &SqlitePool) -> Result<Credentials, DbError> {
    let mut tx = pool.begin().await?;
    let version = sqlx::query_scalar("SELECT version FROM credentials_version").fetch_one(&mut *tx).await?;
    let keys: Vec<KeyRow> = sqlx::query_as(SELECT_KEYS).fetch_all(&mut *tx).await?;
    let clients: Vec<(String, Vec<u8>, String)> =
        sqlx::query_as("SELECT name, secret_hash, created_at FROM clients ORDER BY name")
            .fetch_all(&mut *tx)
            .await?;
    tx.commit().await?;
    let mut held = Vec::with_capacity(clients.len());
    for (name, secret_hash, created_at) in clients {
        held.push(ClientRow { name, secret_hash, created_at: parse_time(&created_at)? });
    }
    Ok(Credentials {
        version,
        keys: keys.into_iter().map(key_from_row).collect::<Result<_, _>>()?,
        clients: held,
    })
}

pub(in crate::db) async fn add_client(
    pool: &SqlitePool,
    name: &str,
    secret_hash: &[u8],
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO clients (name, secret_hash, created_at) VALUES (?1, ?2, ?3)")
        .bind(name)
        .bind(secret_hash)
        .bind(text(Utc::now()))
        .execute(pool)
        .await?;
    Ok(())
}

pub(in crate::db) async fn remove_client(pool: &SqlitePool, name: &str) -> Result<bool, DbError> {
    let removed = sqlx::query("DELETE FROM clients WHERE name = ?1").bind(name).execute(pool).await?;
    Ok(removed.rows_affected() == 1)
}
