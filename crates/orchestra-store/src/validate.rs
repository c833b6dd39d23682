//! Checks shared by every backend, so that each refuses exactly what the others refuse: integer
//! ranges, parent links, the resolution of session-id prefixes. For implementors of
//! [`Store`](crate::Store); the runtime and the CLI have no use for them.

use std::time::Duration;

use crate::StoreError;
use crate::records::{ChatMessageRecord, CheckpointRecord, NewSession, NodeRunRecord, TaskRecord};
use crate::trace::TraceRecord;
pub use crate::views::resolve_prefix;

/// `commit_checkpoint` bumps a session's `updated_at` only when it is at least this old.
pub const UPDATED_AT_RESOLUTION_MS: u64 = 1_000;

/// Converts a number to the signed 64-bit integers databases store, naming the field when it
/// does not fit.
pub fn int(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// The expiry of a lease taken at `now` for `ttl` (clamped to what a database can store).
pub fn lease_until(now: u64, ttl: Duration) -> u64 {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    now.saturating_add(ttl_ms).min(i64::MAX.unsigned_abs())
}

/// Range checks of a new session.
pub fn new_session(s: &NewSession) -> Result<(), StoreError> {
    int("created_at", s.created_at)?;
    if let Some(cp) = s.parent_checkpoint {
        int("parent_checkpoint", cp)?;
    }
    Ok(())
}

/// Range checks of a task record.
pub fn task(t: &TaskRecord) -> Result<(), StoreError> {
    int("step", t.step)?;
    int("finished_at", t.finished_at)?;
    Ok(())
}

/// Range checks of a node run.
pub fn node_run(r: &NodeRunRecord) -> Result<(), StoreError> {
    int("step", r.step)?;
    int("started_at", r.started_at)?;
    int("finished_at", r.finished_at)?;
    int("duration_ms", r.duration_ms)?;
    int("tokens_in", r.tokens_in)?;
    int("tokens_out", r.tokens_out)?;
    int("cache_read_tokens", r.cache_read_tokens)?;
    int("cache_write_tokens", r.cache_write_tokens)?;
    int("tool_calls", r.tool_calls)?;
    if let Some(usd) = r.cost_usd
        && !(usd.is_finite() && usd >= 0.0)
    {
        return Err(StoreError::invalid(
            "node run",
            &r.session,
            format!("cost_usd = {usd} is not an amount of US dollars"),
        ));
    }
    Ok(())
}

/// Range checks of a chat message.
pub fn message(m: &ChatMessageRecord) -> Result<(), StoreError> {
    int("created_at", m.created_at)?;
    Ok(())
}

/// Range checks of a trace record.
pub fn trace(r: &TraceRecord) -> Result<(), StoreError> {
    int("step", r.step())?;
    match r {
        TraceRecord::Turn(t) => {
            int("tokens_in", t.tokens_in)?;
            int("tokens_out", t.tokens_out)?;
            int("started_at", t.started_at)?;
            int("duration_ms", t.duration_ms)?;
        }
        TraceRecord::Tool(t) => {
            int("args_bytes", t.args_bytes)?;
            int("result_bytes", t.result_bytes)?;
            int("duration_ms", t.duration_ms)?;
        }
        TraceRecord::Route(_) => {}
    }
    Ok(())
}

/// Range checks plus "the parent comes before the child"; whether the parent exists is checked
/// by the backend.
pub fn checkpoint(cp: &CheckpointRecord) -> Result<(), StoreError> {
    int("step", cp.step)?;
    int("created_at", cp.created_at)?;
    if let Some(parent) = cp.parent_step
        && parent >= cp.step
    {
        return Err(StoreError::invalid(
            "checkpoint",
            &cp.session,
            format!(
                "parent step {parent} of checkpoint {} is not an earlier step",
                cp.step
            ),
        ));
    }
    Ok(())
}

/// The error for a checkpoint whose parent is missing, or that has none although the session
/// already has checkpoints.
pub fn bad_parent(cp: &CheckpointRecord) -> StoreError {
    let reason = match cp.parent_step {
        Some(p) => format!(
            "parent step {p} of checkpoint {} is not a checkpoint of this session",
            cp.step
        ),
        None => format!(
            "checkpoint {} has no parent step but the session already has checkpoints",
            cp.step
        ),
    };
    StoreError::invalid("checkpoint", &cp.session, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_names_the_field() {
        assert_eq!(int("step", 7).unwrap(), 7);
        let e = int("tokens_in", u64::MAX).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("tokens_in = {} is too large to store", u64::MAX)
        );
    }

    #[test]
    fn lease_until_saturates() {
        assert_eq!(lease_until(1000, Duration::from_millis(500)), 1500);
        assert_eq!(lease_until(1000, Duration::MAX), i64::MAX.unsigned_abs());
    }
}
