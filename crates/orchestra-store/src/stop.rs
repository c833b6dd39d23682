//! A request to stop a session, recorded in the store so that the process driving it notices
//! it wherever it runs (`orchestra stop`, the web UI's stop button): the session meta key
//! [`STOP_META`], read back with every lease renewal ([`Store::renew_lease_checked`]).
//!
//! [`Store::renew_lease_checked`]: crate::Store::renew_lease_checked

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::SessionRecord;

/// Session meta key of a stop request: `{"by": "PID@HOST", "at_ms": MS}` while one is pending,
/// `null` (or absent) when none is. Set by whoever asks a session to stop; cleared when the
/// session is resumed, so the next drive is not stopped at once.
pub const STOP_META: &str = "stop_requested";

/// Who asked a session to stop, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRequest {
    /// The process that asked (`pid@host`).
    pub by: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl StopRequest {
    /// The request a meta value holds: `None` for `null`, and for a value that is not a request
    /// (a stop request is only ever written by [`StopRequest::to_value`]).
    pub fn from_value(v: &Value) -> Option<StopRequest> {
        if v.is_null() {
            return None;
        }
        serde_json::from_value(v.clone()).ok()
    }

    /// The meta value of this request.
    pub fn to_value(&self) -> Value {
        serde_json::json!({ "by": self.by, "at_ms": self.at_ms })
    }

    /// The stop request pending on `rec`, if any.
    pub fn of(rec: &SessionRecord) -> Option<StopRequest> {
        rec.meta.get(STOP_META).and_then(StopRequest::from_value)
    }
}

/// What a lease renewal found ([`Store::renew_lease_checked`](crate::Store::renew_lease_checked)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The lease is extended; nobody asked the session to stop.
    Held,
    /// The lease is extended, and the session was asked to stop: the drive should stop as
    /// Ctrl-C stops it.
    StopRequested(StopRequest),
    /// The owner no longer holds the lease (another process took it over after it expired).
    Lost,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_round_trips_and_null_is_none() {
        let req = StopRequest {
            by: "12@box".into(),
            at_ms: 7,
        };
        assert_eq!(StopRequest::from_value(&req.to_value()), Some(req));
        assert_eq!(StopRequest::from_value(&Value::Null), None);
        assert_eq!(StopRequest::from_value(&json!("junk")), None);
    }
}
