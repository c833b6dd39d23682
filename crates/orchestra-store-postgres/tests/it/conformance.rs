//! The conformance suite every backend passes, on a real PostgreSQL server. The cases of a
//! module share one database (their session ids are unique to the run; the queue's cases claim
//! any session of it, so each module has its own) and run in parallel: with the default pool
//! (one connection for calls made one at a time), with `pool_size=1`, and with four
//! connections all open, so that a case's consecutive calls go to different connections.

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

mod one_connection {
    use super::*;

    fn database() -> &'static str {
        static URL: OnceLock<String> = OnceLock::new();
        URL.get_or_init(fresh_database)
    }

    orchestra_store::conformance_tests!(|clock| {
        let s = PgStore::connect(&format!("{}?pool_size=1", database()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.pool_size(), 1);
        s.with_clock(clock)
    });
}

mod four_connections {
    use super::*;

    fn database() -> &'static str {
        static URL: OnceLock<String> = OnceLock::new();
        URL.get_or_init(fresh_database)
    }

    orchestra_store::conformance_tests!(|clock| {
        let s = PgStore::connect(&format!("{}?pool_size=4", database()))
            .unwrap_or_else(|e| panic!("{e}"));
        s.open_connections().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.connections(), 4);
        s.with_clock(clock)
    });
}
