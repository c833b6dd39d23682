//! The conformance suite of `orchestra-store` on `SqliteStore`, each case on a new file.

use orchestra_store_sqlite::SqliteStore;

orchestra_store::conformance_tests!(|clock| {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(crate::common::db_path(dir.path()))
        .unwrap()
        .with_clock(clock);
    (dir, store)
});
