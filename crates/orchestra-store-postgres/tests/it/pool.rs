//! The pool of connections: calls from several threads run at the same time, the pool grows
//! only as concurrent calls need it and never past its size, and `pool_size` is checked.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use orchestra_store::conformance::new_session;
use orchestra_store::{SessionStatus, Store, StoreError};
use orchestra_store_postgres::testing::fresh_database;
use orchestra_store_postgres::{DEFAULT_POOL_SIZE, PgOptions, PgStore};

/// Bounds a wait that would hang when the behaviour is wrong (never reached when it is right).
const PATIENCE: Duration = Duration::from_secs(30);

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("the test server takes connections")
}

/// Waits until a backend of the database waits for a lock (the blocked call got there).
fn wait_for_a_lock_waiter(admin: &mut postgres::Client) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .expect("the test server answers")
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the call never waited for the lock"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_call_waiting_on_the_server_does_not_hold_up_another_thread_s_call() {
    let url = fresh_database();
    let options = PgOptions {
        lock_timeout: PATIENCE * 2,
        ..PgOptions::default()
    };
    let mut store = PgStore::connect_with(&url, options).unwrap();
    assert_eq!(store.pool_size(), DEFAULT_POOL_SIZE);
    store.create_session(&new_session("held", 1)).unwrap();
    store.create_session(&new_session("free", 2)).unwrap();
    // Another client locks the row of `held`: call A (a status of `held`) waits for it.
    let mut locker = admin(&url);
    let mut lock = locker.transaction().unwrap();
    lock.execute(
        "SELECT 1 FROM orchestra.sessions WHERE id = 'held' FOR UPDATE",
        &[],
    )
    .unwrap();
    let mut a_store = store
        .share()
        .expect("a PostgreSQL store is shared by threads");
    let (a_done_tx, a_done) = mpsc::channel();
    let a = thread::spawn(move || {
        let r = a_store.set_status("held", SessionStatus::Running, None);
        a_done_tx.send(()).unwrap();
        r
    });
    wait_for_a_lock_waiter(&mut admin(&url));
    // Call B, on this thread, runs on another connection while A waits; the lock is let go
    // only after B returned (with one connection B would wait behind A, which waits for the
    // lock: the bounded wait below then fails the test).
    let (b_done_tx, b_done) = mpsc::channel();
    let b = thread::spawn(move || {
        let r = store.set_status("free", SessionStatus::Completed, None);
        b_done_tx.send(()).unwrap();
        (r, store)
    });
    let b_finished = b_done.recv_timeout(PATIENCE).is_ok();
    assert!(
        a_done.try_recv().is_err(),
        "call A went through while the row was locked"
    );
    lock.commit().unwrap();
    a.join().unwrap().unwrap();
    let (b_result, store) = b.join().unwrap();
    assert!(b_finished, "call B waited for call A's lock");
    b_result.unwrap();
    assert_eq!(
        store.session("held").unwrap().unwrap().status,
        SessionStatus::Running
    );
    assert_eq!(
        store.session("free").unwrap().unwrap().status,
        SessionStatus::Completed
    );
    let n = store.connections();
    assert!((2..=DEFAULT_POOL_SIZE).contains(&n), "{n} connections");
}

#[test]
fn calls_one_at_a_time_keep_one_connection_and_many_at_once_stay_within_the_size() {
    let url = fresh_database();
    let mut store = PgStore::connect(&format!("{url}?pool_size=3")).unwrap();
    for i in 0..20 {
        store
            .create_session(&new_session(&format!("s{i}"), i))
            .unwrap();
    }
    assert_eq!(store.connections(), 1);
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let s = store.share().unwrap();
            thread::spawn(move || {
                for _ in 0..5 {
                    s.find_session(&format!("s{i}")).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(store.connections() <= 3, "{}", store.connections());
    // A connection is counted when its thread starts; one opened late may still be connecting
    // after the calls that made it were served by the others: wait for it to show.
    let mut admin = admin(&url);
    let deadline = Instant::now() + Duration::from_secs(30);
    let open = loop {
        let open: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'orchestra'",
                &[],
            )
            .unwrap()
            .get(0);
        let open = usize::try_from(open).unwrap();
        if open == store.connections() || Instant::now() > deadline {
            break open;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(open, store.connections());
    store.open_connections().unwrap();
    assert_eq!(store.connections(), 3);
    drop(store);
}

#[test]
fn a_bad_pool_size_is_refused_naming_it() {
    let url = fresh_database();
    for bad in ["0", "lots", "65"] {
        let e = PgStore::connect(&format!("{url}?pool_size={bad}")).unwrap_err();
        let StoreError::Unreachable { reason, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!(
            reason,
            &format!(
                "invalid pool_size `{bad}` (from the URL): give a number of connections from 1 \
                 to 64"
            )
        );
    }
    // The option is clamped; the URL's value wins over it.
    let s = PgStore::connect_with(
        &format!("{url}?pool_size=2"),
        PgOptions {
            pool_size: 9,
            ..PgOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.pool_size(), 2);
    let s = PgStore::connect_with(
        &url,
        PgOptions {
            pool_size: 0,
            ..PgOptions::default()
        },
    )
    .unwrap();
    assert_eq!(s.pool_size(), 1);
}
