//! What the JSON formats of command-line agents have in common: stdout cut into lines as it
//! arrives (numbered, each at most [`MAX_LINE`] bytes), each line one JSON object with a string
//! `type`, handed to the format's [`EventStream`]; and what a stream gives at its end.
//!
//! Parsers are tolerant the way the tools' own documentation asks of readers: unknown event
//! types and unknown fields are skipped, so a newer CLI release still works. What cannot be read
//! (a line that is not a JSON object, a known field of the wrong type) is a [`Fault::Malformed`]
//! naming the line and showing its start.

use serde_json::Value;

use crate::types::ExternalToolCall;

/// The longest line accepted (one event; a tool result can be big).
pub(super) const MAX_LINE: usize = 16 * 1024 * 1024;
/// How much of a bad line an error shows.
const EXCERPT: usize = 120;

/// Tokens as the agent reported them, cache reads and writes apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct StreamUsage {
    /// Prompt tokens, cache reads and writes included.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens read from the cache (part of `input`).
    pub cache_read: u64,
    /// Prompt tokens written to the cache (part of `input`).
    pub cache_write: u64,
}

/// What a complete event stream gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Finished {
    /// The agent's final answer.
    pub text: String,
    /// Tokens of the whole run.
    pub usage: StreamUsage,
    /// The cost the agent reported, when it did.
    pub cost_usd: Option<f64>,
    /// The tool calls it made and ran, in order.
    pub tool_calls: Vec<ExternalToolCall>,
    /// The model it named, when it did.
    pub model: Option<String>,
}

/// Why a stream gives no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// A line that cannot be read.
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The start of the line.
        excerpt: String,
    },
    /// The agent reported that it failed (its own message).
    Reported(String),
    /// The stream ended before its final event.
    Truncated(String),
}

impl Fault {
    /// A malformed line `line` (its text `text`) and why.
    pub(super) fn malformed(line: usize, text: &str, reason: impl Into<String>) -> Self {
        let mut excerpt: String = text.chars().take(EXCERPT).collect();
        if excerpt.len() < text.len() {
            excerpt.push_str("...");
        }
        Fault::Malformed {
            line,
            reason: reason.into(),
            excerpt,
        }
    }
}

/// One format's reader of events.
pub(super) trait EventStream: Send {
    /// Reads event `event` of type `kind`; text the agent shows as it works goes to `show`.
    /// An error says why the event cannot be read.
    fn event(&mut self, kind: &str, event: Value, show: &mut dyn FnMut(&str))
    -> Result<(), String>;

    /// What the stream gave, once stdout is closed.
    fn finish(self: Box<Self>) -> Result<Finished, Fault>;
}

/// Cuts stdout into numbered lines and feeds them to an [`EventStream`]; remembers the first
/// malformed line.
pub(super) struct LineFeed {
    stream: Box<dyn EventStream>,
    pending: Vec<u8>,
    line: usize,
    fault: Option<Fault>,
}

impl LineFeed {
    pub(super) fn new(stream: Box<dyn EventStream>) -> Self {
        LineFeed {
            stream,
            pending: Vec::new(),
            line: 0,
            fault: None,
        }
    }

    /// Takes a piece of stdout; returns false once a line could not be read (the rest is
    /// ignored: the caller stops the program).
    pub(super) fn push(&mut self, bytes: &[u8], show: &mut dyn FnMut(&str)) -> bool {
        if self.fault.is_some() {
            return false;
        }
        // What was pending holds no newline: only the new bytes are searched (a long line
        // arriving in small reads is scanned once).
        let mut from = self.pending.len();
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.pending[from..].iter().position(|&b| b == b'\n') {
            let line = self.pending[start..from + end].to_vec();
            start = from + end + 1;
            from = start;
            if let Err(f) = self.line(&line, show) {
                self.fault = Some(f);
                return false;
            }
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            let text = String::from_utf8_lossy(&self.pending[..EXCERPT * 4]).into_owned();
            self.fault = Some(Fault::malformed(
                self.line + 1,
                &text,
                format!("the line is longer than {} MiB", MAX_LINE / (1024 * 1024)),
            ));
            return false;
        }
        true
    }

    /// Ends the stream: its last line (when stdout did not end with a newline), then what the
    /// format makes of it all.
    pub(super) fn finish(mut self, show: &mut dyn FnMut(&str)) -> Result<Finished, Fault> {
        if let Some(f) = self.fault {
            return Err(f);
        }
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.line(&last, show)?;
        }
        self.stream.finish()
    }

    /// The first malformed line, if any was met.
    pub(super) fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    fn line(&mut self, bytes: &[u8], show: &mut dyn FnMut(&str)) -> Result<(), Fault> {
        self.line += 1;
        let n = self.line;
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let text = String::from_utf8_lossy(bytes);
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Fault::malformed(n, &text, format!("it is not JSON ({e})")))?;
        let kind = match value.get("type") {
            Some(Value::String(k)) => k.clone(),
            Some(_) => return Err(Fault::malformed(n, &text, "its `type` is not a string")),
            None if value.is_object() => {
                return Err(Fault::malformed(n, &text, "the event has no `type`"));
            }
            None => return Err(Fault::malformed(n, &text, "it is not a JSON object")),
        };
        self.stream
            .event(&kind, value, show)
            .map_err(|reason| Fault::malformed(n, &text, reason))
    }
}

/// Reads a known event into its type; a field of the wrong type is the reason it cannot be.
pub(super) fn read<T: serde::de::DeserializeOwned>(kind: &str, event: Value) -> Result<T, String> {
    serde_json::from_value(event)
        .map_err(|e| format!("the `{kind}` event has an unexpected shape ({e})"))
}

/// Separates pieces of shown text: one message of the agent from the next by a blank line.
#[derive(Debug, Default)]
pub(super) struct Shown {
    any: bool,
    new_message: bool,
}

impl Shown {
    /// Shows `text` as a message of its own.
    pub(super) fn message(&mut self, text: &str, show: &mut dyn FnMut(&str)) {
        self.next_message();
        self.delta(text, show);
    }

    /// Shows `text` as a continuation of the message being shown (a streamed delta).
    pub(super) fn delta(&mut self, text: &str, show: &mut dyn FnMut(&str)) {
        if text.is_empty() {
            return;
        }
        if self.any && self.new_message {
            show("\n\n");
        }
        show(text);
        self.any = true;
        self.new_message = false;
    }

    /// Starts a new message: its first text is separated from what came before.
    pub(super) fn next_message(&mut self) {
        self.new_message = true;
    }
}

/// Feeds `bytes` to `stream` in pieces of `chunk` bytes, as a pipe would; what was shown and
/// what the stream gave.
#[cfg(test)]
pub(super) fn run_stream(
    stream: Box<dyn EventStream>,
    bytes: &[u8],
    chunk: usize,
) -> (String, Result<Finished, Fault>) {
    let mut shown = String::new();
    let mut show = |t: &str| shown.push_str(t);
    let mut feed = LineFeed::new(stream);
    for piece in bytes.chunks(chunk.max(1)) {
        if !feed.push(piece, &mut show) {
            break;
        }
    }
    let out = feed.finish(&mut show);
    (shown, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the kinds of the events it is given.
    #[derive(Default)]
    struct Kinds(Vec<String>);

    impl EventStream for Kinds {
        fn event(
            &mut self,
            kind: &str,
            _event: Value,
            show: &mut dyn FnMut(&str),
        ) -> Result<(), String> {
            if kind == "bad" {
                return Err("a bad event".to_owned());
            }
            show(kind);
            self.0.push(kind.to_owned());
            Ok(())
        }

        fn finish(self: Box<Self>) -> Result<Finished, Fault> {
            Ok(Finished {
                text: self.0.join(","),
                ..Finished::default()
            })
        }
    }

    fn kinds(bytes: &[u8], chunk: usize) -> Result<String, Fault> {
        run_stream(Box::<Kinds>::default(), bytes, chunk)
            .1
            .map(|f| f.text)
    }

    #[test]
    fn lines_split_across_reads_blank_lines_and_a_missing_last_newline_are_fine() {
        let text = "{\"type\":\"a\"}\r\n\n  \n{\"type\":\"b\",\"x\":[1,2]}\n{\"type\":\"c\"}";
        for chunk in [1, 2, 7, 1000] {
            assert_eq!(kinds(text.as_bytes(), chunk).unwrap(), "a,b,c", "{chunk}");
        }
    }

    #[test]
    fn a_bad_line_is_named_with_its_number_and_start() {
        let long = format!("{{\"type\":\"a\"}}\n\nnot json {}\n", "x".repeat(300));
        let Err(Fault::Malformed {
            line,
            reason,
            excerpt,
        }) = kinds(long.as_bytes(), 5)
        else {
            panic!("not malformed")
        };
        assert_eq!(line, 3);
        assert!(
            reason.starts_with("it is not JSON (expected ident"),
            "{reason}"
        );
        assert!(excerpt.starts_with("not json xxx") && excerpt.ends_with("..."));
        assert_eq!(excerpt.chars().count(), EXCERPT + 3);

        for (text, why) in [
            ("[1,2]\n", "it is not a JSON object"),
            ("{\"kind\":\"a\"}\n", "the event has no `type`"),
            ("{\"type\":3}\n", "its `type` is not a string"),
            ("{\"type\":\"bad\"}\n", "a bad event"),
            (
                "{\"type\":\"a\"",
                "it is not JSON (EOF while parsing an object",
            ),
        ] {
            match kinds(text.as_bytes(), 3) {
                Err(Fault::Malformed {
                    line: 1, reason, ..
                }) => {
                    assert!(reason.starts_with(why), "{text}: {reason}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn nothing_after_a_bad_line_is_read() {
        let mut feed = LineFeed::new(Box::<Kinds>::default());
        let mut shown = String::new();
        let mut show = |t: &str| shown.push_str(t);
        assert!(!feed.push(b"{\"type\":\"a\"}\nnope\n{\"type\":\"b\"}\n", &mut show));
        assert!(!feed.push(b"{\"type\":\"c\"}\n", &mut show));
        assert!(matches!(
            feed.fault(),
            Some(Fault::Malformed { line: 2, .. })
        ));
        assert_eq!(shown, "a");
    }

    #[test]
    fn a_line_without_end_is_refused_past_the_cap() {
        let mut feed = LineFeed::new(Box::<Kinds>::default());
        let mut show = |_: &str| {};
        assert!(feed.push(b"{\"type\":\"a\"}\n", &mut show));
        let piece = vec![b'x'; 1024 * 1024];
        let mut pushed = 0;
        while feed.push(&piece, &mut show) {
            pushed += 1;
            assert!(pushed <= MAX_LINE / piece.len(), "never refused");
        }
        let Some(Fault::Malformed { line, reason, .. }) = feed.fault() else {
            panic!("{:?}", feed.fault())
        };
        assert_eq!(
            (*line, reason.as_str()),
            (2, "the line is longer than 16 MiB")
        );
    }

    #[test]
    fn messages_are_separated_and_deltas_joined() {
        let mut out = String::new();
        let mut show = |t: &str| out.push_str(t);
        let mut s = Shown::default();
        s.message("", &mut show);
        s.message("one", &mut show);
        s.next_message();
        s.delta("tw", &mut show);
        s.delta("o", &mut show);
        s.message("three", &mut show);
        assert_eq!(out, "one\n\ntwo\n\nthree");
    }
}
