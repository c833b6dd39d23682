//! Connecting: migrations under concurrency, versions, errors that name the server and never
//! the password.

use std::thread;

use orchestra_store::{Store, StoreError};
use orchestra_store_postgres::testing::{fresh_database, server};
use orchestra_store_postgres::{PgOptions, PgStore, SCHEMA_VERSION};

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

#[test]
fn processes_starting_together_migrate_a_new_database_once() {
    let url = fresh_database();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || PgStore::connect(&url).map(drop))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    let rows = admin(&url)
        .query("SELECT version FROM orchestra.schema_version ORDER BY version", &[])
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let want: Vec<i32> = (1..=i32::try_from(SCHEMA_VERSION).unwrap()).collect();
    assert_eq!(versions, want, "each migration applied once");
}
