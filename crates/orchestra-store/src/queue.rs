//! The queue of sessions that workers drive (`orchestra run --queue`, `orchestra worker`): which
//! sessions belong to it and which of them a worker may claim.

use crate::{SessionRecord, SessionStatus};

/// Session meta key of a session of the queue: `{"queued_at": MS}`, set when it is enqueued
/// and kept for its whole life (workers drive it; a worker that dies leaves it to another).
pub const QUEUE_META: &str = "queue";

/// Whether `rec` may be claimed by a worker at `now`: a session of the queue whose lease is free
/// or expired, and which is `queued` (waiting) or `running` (its worker died: the lease ran out).
/// Paused, completed, failed, stopped and interrupted sessions are never claimed.
pub fn claimable(rec: &SessionRecord, now: u64) -> bool {
    rec.meta.contains_key(QUEUE_META)
        && matches!(rec.status, SessionStatus::Queued | SessionStatus::Running)
        && rec.lease_holder(now).is_none()
}
