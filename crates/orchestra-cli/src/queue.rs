//! Human turns in sessions of the queue: `attach` (and the answers of `orchestra mcp`) drive the
//! human's step here, then hand the session back to the workers.

use std::io::{self, Write as _};

use orchestra_graph::Compiled;
use orchestra_runtime::{Engine, RuntimeError};
use orchestra_store::{QUEUE_META, SessionRecord, SessionStatus};

/// For a session of the queue: the `max_steps` that ends this drive after the step the human
/// answers (the last checkpoint + 1, never above the pipeline's own limit); `None` for other
/// sessions, which are driven to their end here.
pub(crate) async fn human_turn_limit(
    engine: &Engine,
    rec: &SessionRecord,
    compiled: &Compiled,
) -> Result<Option<u32>, RuntimeError> {
    if !rec.meta.contains_key(QUEUE_META) {
        return Ok(None);
    }
    let id = rec.id.clone();
    let last = engine
        .store()
        .call(move |s| s.checkpoints(&id))
        .await?
        .last()
        .map_or(0, |c| c.step);
    let next = u32::try_from(last.saturating_add(1)).unwrap_or(u32::MAX);
    Ok(Some(next.min(compiled.limits.max_steps)))
}

/// After a drive of session `id` limited by [`human_turn_limit`]: when it stopped at that
/// limit, puts the session back in the queue, says so on stdout and returns true; otherwise (it
/// completed, failed, paused again) returns false and the outcome stands.
pub(crate) async fn hand_back(engine: &Engine, id: &str, limit: u32) -> Result<bool, RuntimeError> {
    let sid = id.to_owned();
    let (rec, last) = engine
        .store()
        .call(move |s| {
            let rec = s.find_session(&sid)?;
            let last = s.checkpoints(&sid)?.last().map(|c| c.step);
            Ok((rec, last))
        })
        .await?;
    if rec.status != SessionStatus::Stopped || last != Some(u64::from(limit)) {
        return Ok(false);
    }
    if !engine
        .requeue(id, "queued again after a human's turn")
        .await?
    {
        return Ok(false);
    }
    let mut w = io::stdout().lock();
    let _ = writeln!(
        w,
        "queued: your turn is over; a worker goes on with the session"
    );
    let _ = writeln!(w, "session {id}");
    Ok(true)
}
