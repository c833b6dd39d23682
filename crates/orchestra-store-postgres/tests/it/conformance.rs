//! The conformance suite every backend passes, on a real PostgreSQL server. The cases share
//! one database (their session ids are unique to the run) and run in parallel.

use std::sync::OnceLock;

use orchestra_store_postgres::PgStore;
use orchestra_store_postgres::testing::fresh_database;

/// The database the cases share, made once per test binary.
fn database() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(fresh_database)
}

orchestra_store::conformance_tests!(|clock| {
    PgStore::connect(database())
        .unwrap_or_else(|e| panic!("{e}"))
        .with_clock(clock)
});
