//! Events as JSON lines (`run --events FILE`): the versioned envelope every consumer of a
//! session's events reads (a file, the web UI, the MCP server), a sink that writes one line per
//! event and flushes it, and [`Fanout`] to give each event to several sinks.
//!
//! The format is documented in `docs/events.md`; [`EVENTS_VERSION`] changes only when a reader
//! of the previous version would misread a line.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::events::{Event, EventSink};

/// The version of the envelope and of the events in it (`"v"` of every line).
pub const EVENTS_VERSION: u32 = 1;

/// `event` in its envelope: `{"v":1,"ts":"2026-12-03T09:33:15.123Z","session":"ID",
/// "event":"node_started",...fields}`. `session` is `null` while the session is not known yet.
pub fn envelope(event: &Event, session: Option<&str>, at: SystemTime) -> Value {
    // A child session's event is its own line, naming the child and where it was called
    // (the innermost call when children call children).
    if let Event::Child { child, node, inner } = event {
        let mut line = envelope(inner, Some(child), at);
        if let Value::Object(m) = &mut line {
            m.entry("parent_session")
                .or_insert_with(|| session.map(str::to_owned).into());
            m.entry("call_node").or_insert_with(|| node.clone().into());
        }
        return line;
    }
    let mut line = Map::with_capacity(12);
    line.insert("v".into(), EVENTS_VERSION.into());
    line.insert(
        "ts".into(),
        humantime::format_rfc3339_millis(at).to_string().into(),
    );
    line.insert("session".into(), session.map(str::to_owned).into());
    // An event's own `session` field (session_started, session_finished) is the same id.
    if let Ok(Value::Object(fields)) = serde_json::to_value(event) {
        line.extend(fields);
    }
    Value::Object(line)
}

/// Whether `event` belongs in an event log: everything but streamed text deltas (the model
/// turn that follows carries what the text added up to).
pub fn is_logged(event: &Event) -> bool {
    match event {
        Event::Child { inner, .. } => is_logged(inner),
        other => !matches!(other, Event::Text { .. }),
    }
}

/// Called once, with the error, when an [`EventLog`] cannot write any more.
pub type OnFailure = Box<dyn Fn(&io::Error) + Send + Sync>;

/// Writes each event as one enveloped JSON line and flushes it, so a reader tailing the file
/// sees the session live. When a write fails (a full disk, a reader that left the pipe), the
/// log reports it once through its [`OnFailure`] and writes nothing more; the session goes on.
pub struct EventLog {
    state: Mutex<LogState>,
    on_failure: OnFailure,
}

struct LogState {
    out: Option<Box<dyn Write + Send>>,
    session: Option<String>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").finish_non_exhaustive()
    }
}

impl EventLog {
    /// A log writing to `out`; lines carry `session` until an event names the session (a
    /// resume by prefix learns the full id from `session_started`).
    pub fn new(out: Box<dyn Write + Send>, session: Option<String>, on_failure: OnFailure) -> Self {
        EventLog {
            state: Mutex::new(LogState {
                out: Some(out),
                session,
            }),
            on_failure,
        }
    }

    /// Whether the log still writes (no write has failed).
    pub fn is_writing(&self) -> bool {
        self.state.lock().map(|s| s.out.is_some()).unwrap_or(false)
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: Event) {
        if !is_logged(&event) {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Event::SessionStarted { session, .. } | Event::SessionFinished { session, .. } =
            &event
        {
            state.session = Some(session.clone());
        }
        let line = envelope(&event, state.session.as_deref(), SystemTime::now());
        let Some(out) = state.out.as_mut() else {
            return;
        };
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let written = out.write_all(&bytes).and_then(|()| out.flush());
        if let Err(e) = written {
            state.out = None;
            drop(state);
            (self.on_failure)(&e);
        }
    }
}

/// Gives every event to each of its sinks, in order.
#[derive(Clone, Default)]
pub struct Fanout(Vec<Arc<dyn EventSink>>);

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Fanout").field(&self.0.len()).finish()
    }
}

impl Fanout {
    /// No sinks yet.
    pub fn new() -> Self {
        Fanout(Vec::new())
    }

    /// Adds `sink`.
    pub fn with(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.0.push(sink);
        self
    }
}

impl EventSink for Fanout {
    fn emit(&self, event: Event) {
        if let Some((last, first)) = self.0.split_last() {
            for sink in first {
                sink.emit(event.clone());
            }
            last.emit(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A writer into a shared buffer, failing every write after `fail_after` bytes.
    #[derive(Clone)]
    struct Buf {
        bytes: Arc<Mutex<Vec<u8>>>,
        fail_after: usize,
    }

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut v = self.bytes.lock().unwrap();
            if v.len() + b.len() > self.fail_after {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"));
            }
            v.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines(buf: &Buf) -> Vec<Value> {
        String::from_utf8(buf.bytes.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn synthetic() -> Vec<Event> {
        vec![
            Event::SessionStarted {
                session: "20261203-abcdef".into(),
                pipeline: "p".into(),
                from_step: None,
            },
            Event::ModelTurn {
                step: 1,
                node: "a".into(),
                run_index: 0,
                turn: 0,
                provider: "scripted".into(),
                model: "m".into(),
                duration_ms: 12,
                tokens_in: 10,
                tokens_out: 5,
                tokens_estimated: true,
                stop: "end_turn".into(),
                tool_calls: 0,
            },
            Event::Text {
                node: "a".into(),
                text: "partial".into(),
            },
            Event::Routed {
                step: 1,
                from: "critic".into(),
                condition: Some("critic_routing".into()),
                decision: Some("revise".into()),
                targets: vec!["a".into(), "b".into()],
                loop_round: Some(1),
                loop_max: Some(2),
            },
        ]
    }

    #[test]
    fn every_line_is_an_enveloped_event_and_text_deltas_are_left_out() {
        let buf = Buf {
            bytes: Arc::default(),
            fail_after: usize::MAX,
        };
        let log = EventLog::new(Box::new(buf.clone()), None, Box::new(|_| {}));
        log.emit(Event::Warning {
            message: "before the session".into(),
        });
        for e in synthetic() {
            log.emit(e);
        }
        let got = lines(&buf);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0]["session"], Value::Null);
        assert_eq!(got[0]["event"], "warning");
        for l in &got {
            assert_eq!(l["v"], EVENTS_VERSION);
            let ts = l["ts"].as_str().unwrap();
            assert!(humantime::parse_rfc3339(ts).is_ok(), "{ts}");
            assert_eq!(ts.len(), "2026-12-03T09:33:15.123Z".len(), "{ts}");
        }
        assert_eq!(got[1]["session"], "20261203-abcdef");
        assert_eq!(got[2]["event"], "model_turn");
        assert_eq!(got[2]["session"], "20261203-abcdef");
        assert_eq!(got[2]["tokens_in"], 10);
        assert_eq!(got[2]["tokens_estimated"], true);
        assert_eq!(got[3]["event"], "routed");
        assert_eq!(got[3]["decision"], "revise");
        assert_eq!(got[3]["targets"], serde_json::json!(["a", "b"]));
        // The envelope's keys come first, so a line reads `{"v":1,"ts":..,"session":..,"event":..`.
        let keys: Vec<&String> = got[3].as_object().unwrap().keys().take(4).collect();
        assert_eq!(keys, ["v", "ts", "session", "event"]);
    }

    #[test]
    fn a_failed_write_is_reported_once_and_the_log_stops() {
        let buf = Buf {
            bytes: Arc::default(),
            fail_after: 300,
        };
        let failures = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&failures);
        let log = EventLog::new(
            Box::new(buf.clone()),
            Some("s".into()),
            Box::new(move |e| {
                assert_eq!(e.kind(), io::ErrorKind::StorageFull);
                seen.fetch_add(1, Ordering::SeqCst);
            }),
        );
        for _ in 0..20 {
            for e in synthetic() {
                log.emit(e);
            }
        }
        assert_eq!(failures.load(Ordering::SeqCst), 1);
        assert!(!log.is_writing());
        // What was written before the failure are whole lines.
        assert!(!lines(&buf).is_empty());
    }

    #[test]
    fn a_fanout_gives_every_sink_every_event() {
        let (a, b) = (
            Arc::new(crate::CollectEvents::default()),
            Arc::new(crate::CollectEvents::default()),
        );
        let fan = Fanout::new().with(a.clone()).with(b.clone());
        for e in synthetic() {
            fan.emit(e);
        }
        assert_eq!(a.take(), synthetic());
        assert_eq!(b.take(), synthetic());
    }
}
