//! Sessions as data for the programs that show them: `orchestra status` and `show` (text and
//! `--json`), `report`, the MCP server and the web UI read the same rows, details and steps
//! from here.

pub mod path;
pub mod report;
pub mod route;
pub mod sessions;
pub mod show;
pub mod state_diff;

/// A time in UTC, labelled so: `2026-11-21 05:17:14 UTC`.
pub fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let id = crate::date_of_days(days);
    format!(
        "{id} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}
