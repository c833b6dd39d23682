//! Tests of the PostgreSQL store against a real server (see `orchestra_store_postgres::testing`).

mod claim;
mod conformance;
mod connect;
mod pool;
mod tls;
