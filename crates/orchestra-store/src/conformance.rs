//! The conformance suite every [`Store`] backend passes (feature `conformance`).
//!
//! A backend's test binary runs every case as a test of its own, by name:
//!
//! ```ignore
//! orchestra_store::conformance_tests!(|clock| MemoryStore::new().with_clock(clock));
//! // a store that needs something kept alive (a temp dir) returns it first:
//! orchestra_store::conformance_tests!(|clock| {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = SqliteStore::open(dir.path().join("o.db")).unwrap().with_clock(clock);
//!     (dir, store)
//! });
//! ```
//!
//! The factory gets the [`Clock`] the store must read for `updated_at` and lease expiry: the
//! cases move it by hand. Cases assume nothing of the backend beyond the [`Store`] contract, and
//! every session id they use is unique to the run ([`Ctx::id`]), so a backend on a shared
//! server database (PostgreSQL) can run them against one database, in parallel, run after run.
//! Listings are checked on the case's own sessions only.

mod fence;
mod lifecycle;
mod queue;
mod records;
mod sessions;
mod steps;
mod trace;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use records::{ManualClock, START, checkpoint, new_session, node_run, task};
pub use trace::{model_turn, route, tool_call};

use crate::{Clock, Store};

/// What a store factory returns: a store, or `(guard, store)` where the guard keeps what the
/// store needs alive (a temp dir) until the case ends.
pub trait Fixture {
    /// The store under test.
    fn store(&mut self) -> &mut dyn Store;
}

impl<S: Store> Fixture for S {
    fn store(&mut self) -> &mut dyn Store {
        self
    }
}

impl<G, S: Store> Fixture for (G, S) {
    fn store(&mut self) -> &mut dyn Store {
        &mut self.1
    }
}

/// What a case gets besides the store: the clock and a namespace for its session ids.
#[derive(Debug)]
pub struct Ctx {
    clock: ManualClock,
    prefix: String,
}

impl Ctx {
    fn new(case: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        // The case's initials, the process, the time and a counter: unique across processes
        // and runs sharing one database.
        let initials: String = case.split('_').filter_map(|w| w.chars().next()).collect();
        Self {
            clock: ManualClock::new(START),
            prefix: format!("{initials}-{:x}-{nanos:x}-{seq}-", std::process::id()),
        }
    }

    /// The session id `name` of this run of the case (unique to it).
    pub fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Whether `id` is one of this run's session ids.
    pub fn owns(&self, id: &str) -> bool {
        id.starts_with(&self.prefix)
    }

    /// The time the store sees now.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Moves the store's clock forward.
    pub fn advance(&self, ms: u64) {
        self.clock.advance(ms);
    }
}

/// One case of the suite.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// Its name (the test's name in a backend's test binary).
    pub name: &'static str,
    run: fn(&mut dyn Store, &Ctx),
}

macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        /// Every case of the suite.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: $module::$name }),*];
    };
}

cases!(
    sessions::session_round_trip,
    sessions::find_session_by_prefix,
    sessions::find_session_by_tail,
    sessions::list_sessions_filters_and_totals,
    sessions::status_and_meta,
    sessions::a_session_goes_on_with_another_pipeline,
    sessions::leases,
    sessions::delete_session_removes_everything,
    queue::queued_sessions_are_claimed_oldest_first_and_once,
    queue::a_session_whose_worker_died_is_claimed_again,
    queue::a_stop_request_is_read_with_the_lease_renewal,
    sessions::unknown_sessions_are_not_found,
    lifecycle::stopped_and_interrupted_are_statuses_of_their_own,
    lifecycle::every_status_is_stored_and_filtered,
    lifecycle::child_sessions_name_their_parent_node,
    steps::task_records_round_trip_and_order,
    steps::task_records_replace_and_atomic_batches,
    steps::checkpoints_and_snapshots,
    steps::a_step_commits_its_records_and_checkpoint_together,
    steps::checkpoint_parent_rules,
    steps::restore_point_is_snapshot_plus_later_tasks,
    steps::node_runs_and_messages,
    steps::node_runs_keep_cache_tokens_and_costs,
    steps::numbers_out_of_range_are_refused,
    steps::json_payloads_come_back_exactly,
    trace::trace_round_trip_and_order,
    trace::trace_batches_are_atomic_and_go_with_results,
    trace::trace_texts_come_back_exactly,
    fence::fenced_commits_need_the_lease,
    fence::an_expired_lease_fences_until_another_takes_it,
);

/// Runs the case `name` on a store made by `factory` (see the module docs).
///
/// # Panics
///
/// When the case fails, or no case has this name.
pub fn run<F, T>(name: &str, factory: F)
where
    F: FnOnce(Clock) -> T,
    T: Fixture,
{
    let case = CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no conformance case is named `{name}`"));
    let cx = Ctx::new(name);
    let mut fixture = factory(cx.clock.clock());
    (case.run)(fixture.store(), &cx);
}

/// Checks that `names` (the tests a backend's binary runs) are exactly the suite's cases.
///
/// # Panics
///
/// When a case is missing or a name is not a case.
pub fn check_names(names: &[&str]) {
    let mut expected: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    let mut got = names.to_vec();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, expected,
        "the backend's tests are not the suite's cases"
    );
}

/// Expands to one `#[test]` per conformance case (named after it), each running the case on a
/// store made by the factory, plus a test that the list is complete. See [`conformance`](self).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        $crate::conformance_tests!(@cases $factory;
            session_round_trip,
            find_session_by_prefix,
            find_session_by_tail,
            list_sessions_filters_and_totals,
            status_and_meta,
            a_session_goes_on_with_another_pipeline,
            leases,
            delete_session_removes_everything,
            queued_sessions_are_claimed_oldest_first_and_once,
            a_session_whose_worker_died_is_claimed_again,
            a_stop_request_is_read_with_the_lease_renewal,
            unknown_sessions_are_not_found,
            stopped_and_interrupted_are_statuses_of_their_own,
            every_status_is_stored_and_filtered,
            child_sessions_name_their_parent_node,
            task_records_round_trip_and_order,
            task_records_replace_and_atomic_batches,
            checkpoints_and_snapshots,
            a_step_commits_its_records_and_checkpoint_together,
            checkpoint_parent_rules,
            restore_point_is_snapshot_plus_later_tasks,
            node_runs_and_messages,
            node_runs_keep_cache_tokens_and_costs,
            numbers_out_of_range_are_refused,
            json_payloads_come_back_exactly,
            trace_round_trip_and_order,
            trace_batches_are_atomic_and_go_with_results,
            trace_texts_come_back_exactly,
            fenced_commits_need_the_lease,
            an_expired_lease_fences_until_another_takes_it,
        );
    };
    (@cases $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::run(stringify!($name), $factory);
            }
        )*

        #[test]
        fn conformance_suite_is_complete() {
            $crate::conformance::check_names(&[$(stringify!($name)),*]);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_per_run_of_a_case() {
        let (a, b) = (
            Ctx::new("find_session_by_prefix"),
            Ctx::new("find_session_by_prefix"),
        );
        assert_ne!(a.id("s"), b.id("s"));
        assert!(a.id("s").starts_with("fsbp-") && a.id("s").ends_with("-s"));
        assert!(a.owns(&a.id("x")) && !a.owns(&b.id("x")));
    }

    #[test]
    fn unknown_names_are_reported() {
        let r = std::panic::catch_unwind(|| {
            run("nope", |clock| crate::MemoryStore::new().with_clock(clock))
        });
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| check_names(&["session_round_trip"]));
        assert!(r.is_err(), "a missing case is reported");
    }
}
