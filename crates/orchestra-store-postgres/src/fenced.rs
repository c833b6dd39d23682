//! Fenced writes on PostgreSQL ([`orchestra_store::Store::commit_fenced`]): a step's records and
//! checkpoint, written only while the writer still holds the lease of every session concerned.

use postgres::Client;

use crate::ctx::Ctx;
use crate::steps::{checkpoint_in, insert_results, validate_results};
use orchestra_store::validate::{self, int};
use orchestra_store::{
    CheckpointRecord, Fence, NodeRunRecord, StoreError, TaskRecord, TraceRecord, fenced_sessions,
};

/// Stores the records and commits `cp` in one transaction after checking `fence` on each
/// session's row, read `FOR UPDATE` (in id order): a worker claiming the session meanwhile
/// waits for this transaction or skips the row (`SKIP LOCKED`), so the owner checked is the
/// owner at commit. A lost lease rolls the transaction back.
pub(crate) fn commit_fenced(
    client: &mut Client,
    cx: &Ctx,
    fence: Fence<'_>,
    (tasks, runs, trace): (&[TaskRecord], &[NodeRunRecord], &[TraceRecord]),
    cp: Option<&CheckpointRecord>,
    now: u64,
) -> Result<(), StoreError> {
    validate_results(tasks, runs)?;
    trace.iter().try_for_each(validate::trace)?;
    let now = int("updated_at", now)?;
    let err = cx.err("commit a step");
    let mut tx = client.transaction().map_err(&err)?;
    for id in fenced_sessions(tasks, runs, trace, cp) {
        let owner: Option<String> = tx
            .query_opt(
                "SELECT lease_owner FROM sessions WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .map_err(cx.err("check the session lease"))?
            .ok_or_else(|| StoreError::not_found(id))?
            .get(0);
        fence.check_owner(id, owner.as_deref())?;
    }
    insert_results(&mut tx, cx, tasks, runs)?;
    crate::trace::insert_trace(&mut tx, cx, trace)?;
    let refused = match cp {
        Some(cp) => checkpoint_in(&mut tx, cx, cp, now).err(),
        None => None,
    };
    tx.commit().map_err(err)?;
    refused.map_or(Ok(()), Err)
}
