//! Claiming queued sessions from several connections at once: `FOR UPDATE SKIP LOCKED` hands
//! each session to exactly one claimer.

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use orchestra_store::Store;
use orchestra_store::conformance::new_session;
use orchestra_store_postgres::PgStore;
use orchestra_store_postgres::testing::fresh_database;

#[test]
fn claimers_racing_on_one_queue_never_share_a_session() {
    let url = fresh_database();
    let mut store = PgStore::connect(&url).unwrap_or_else(|e| panic!("{e}"));
    let ids: BTreeSet<String> = (0..60).map(|i| format!("race-{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .enqueue_session(&new_session(id, i as u64))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let claimers: Vec<_> = (0..4)
        .map(|n| {
            let url = url.clone();
            thread::spawn(move || {
                let mut s = PgStore::connect(&url).unwrap_or_else(|e| panic!("{e}"));
                let owner = format!("{n}@claimer");
                let mut got = Vec::new();
                while let Some(rec) = s
                    .claim_session(&owner, Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("{e}"))
                {
                    assert_eq!(rec.lease_owner.as_deref(), Some(owner.as_str()));
                    got.push(rec.id);
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.join().unwrap_or_else(|_| panic!("a claimer panicked")));
    }
    let distinct: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), 60, "every session was claimed exactly once");
    assert_eq!(distinct, ids);
}
