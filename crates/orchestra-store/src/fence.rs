//! Fencing: writes of a drive that only the holder of the session's lease may make, so a
//! process that stalled past its lease (a pause, a partition) cannot commit over the process
//! that took the session over ([`Store::commit_fenced`](crate::Store::commit_fenced)).

use crate::{SessionRecord, StoreError};

/// The lease a write is fenced on: it is accepted only while `owner` holds the lease of every
/// session it writes to.
///
/// "Holds" means the session's lease owner is still `owner`, whether or not its time ran out:
/// a lease that expired but that nobody took over leaves the holder the only writer there was
/// (a claim or an acquire in between would have changed the owner), so its write is accepted,
/// as a renewal then would be. A lease taken over by another owner, or released, refuses it
/// with [`StoreError::LeaseLost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence<'a> {
    /// The lease owner (`pid@host`) the writer drives as.
    pub owner: &'a str,
}

impl Fence<'_> {
    /// `Ok` when `rec`'s lease is still this fence's owner's, else `LeaseLost` naming the
    /// holder (backends that read the session row under the write lock check with it).
    pub fn check(&self, rec: &SessionRecord) -> Result<(), StoreError> {
        self.check_owner(&rec.id, rec.lease_owner.as_deref())
    }

    /// [`Fence::check`] on the lease owner column of session `session`.
    pub fn check_owner(&self, session: &str, lease_owner: Option<&str>) -> Result<(), StoreError> {
        if lease_owner == Some(self.owner) {
            return Ok(());
        }
        Err(StoreError::LeaseLost {
            session: session.to_owned(),
            holder: lease_owner.map(str::to_owned),
        })
    }
}

/// The sessions written by a group of records and a checkpoint, each once, sorted (the order
/// backends lock them in, so two fenced writers never wait on each other in a cycle).
pub fn fenced_sessions<'a>(
    tasks: &'a [crate::TaskRecord],
    runs: &'a [crate::NodeRunRecord],
    trace: &'a [crate::TraceRecord],
    cp: Option<&'a crate::CheckpointRecord>,
) -> Vec<&'a str> {
    let mut ids: Vec<&str> = tasks
        .iter()
        .map(|t| t.session.as_str())
        .chain(runs.iter().map(|r| r.session.as_str()))
        .chain(trace.iter().map(crate::TraceRecord::session))
        .chain(cp.map(|c| c.session.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owner_passes_and_the_refusal_names_the_holder() {
        let fence = Fence { owner: "1@a" };
        assert!(fence.check_owner("s", Some("1@a")).is_ok());
        let e = fence.check_owner("s", Some("2@b")).unwrap_err();
        assert_eq!(e.to_string(), "lost the lease of session `s` to 2@b");
        assert_eq!(e.exit_class(), crate::ErrorClass::LeaseLost);
        let e = fence.check_owner("s", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "lost the lease of session `s` to nobody (it was released)"
        );
    }
}
