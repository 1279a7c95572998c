//! The API test suite, one binary. Every test runs twice: against a fresh
//! Postgres database and against a fresh SQLite file.

mod helpers;

mod cache;
mod config;
mod endpoints;
mod expiry;
mod input;
mod outage;
mod purge;
mod refresh;
mod revocation;
mod roundtrips;
mod tokens;
mod trust;
