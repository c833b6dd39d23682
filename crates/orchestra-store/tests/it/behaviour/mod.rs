//! The behavioural suite every `Store` must pass, written once and run on `MemoryStore` and on
//! `SqliteStore` (a real file in a temp dir).

mod sessions;
mod steps;

pub(crate) const START: u64 = 1_700_000_000_000;

macro_rules! behaviour {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod memory {
            $(
                #[test]
                fn $name() {
                    let clock = crate::common::TestClock::new(super::START);
                    let mut store = crate::common::memory_store(&clock);
                    super::$module::$name(&mut store, &clock);
                }
            )*
        }
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let clock = crate::common::TestClock::new(super::START);
                    let (_dir, mut store) = crate::common::sqlite_store(&clock);
                    super::$module::$name(&mut store, &clock);
                }
            )*
        }
    };
}

behaviour!(
    sessions::session_round_trip,
    sessions::find_session_by_prefix,
    sessions::list_sessions_filters_and_totals,
    sessions::status_and_meta,
    sessions::leases,
    steps::task_records_round_trip_and_order,
    steps::task_records_replace_and_atomic_batches,
    steps::checkpoints_and_snapshots,
    steps::a_step_commits_its_records_and_checkpoint_together,
    steps::checkpoint_parent_rules,
    steps::restore_point_is_snapshot_plus_later_tasks,
    steps::node_runs_and_messages,
    sessions::delete_session_removes_everything,
    sessions::unknown_sessions_are_not_found,
    steps::numbers_out_of_range_are_refused,
    steps::json_payloads_come_back_exactly,
);
