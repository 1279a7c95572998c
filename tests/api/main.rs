//! The API test suite, one binary. Every test runs twice: against a fresh
//! Postgres database and against a fresh SQLite file.

mod helpers;

mod browser;
mod cache;
mod cli;
mod config;
mod cookies;
mod cors;
mod discovery;
mod endpoints;
mod expiry;
mod feed;
mod input;
mod introspection;
mod keys;
mod logs;
mod metrics;
mod openapi;
mod outage;
mod outside;
mod password;
mod purge;
mod readme;
mod refresh;
mod request_id;
mod resource_server;
mod revocation;
mod rfc7009;
mod roles;
mod roundtrips;
mod schemathesis;
mod sessions;
mod throttle;
mod tokens;
mod trust;
mod views;
mod writes;
