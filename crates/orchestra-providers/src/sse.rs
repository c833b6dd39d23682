//! An incremental decoder of server-sent events (`text/event-stream`), fed with network chunks
//! that may split lines (and UTF-8 characters) anywhere.

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Turns bytes into events, following the WHATWG event-stream parsing rules (comments, `event`,
/// `data`, blank-line dispatch; `id` and `retry` are ignored).
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Feeds a chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            let line = String::from_utf8_lossy(line).into_owned();
            if let Some(ev) = self.line(&line) {
                events.push(ev);
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        events
    }

    /// Whether bytes of an unfinished line or event are pending.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty() || self.has_data
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take();
            if !self.has_data {
                return None;
            }
            self.has_data = false;
            return Some(SseEvent {
                event,
                data: std::mem::take(&mut self.data),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    #[test]
    fn decodes_events_split_across_chunks() {
        let stream = "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n: comment\n\nevent: a\ndata: x\ndata:y\n\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut d = SseDecoder::default();
            let mut out = d.push(&stream.as_bytes()[..split]);
            out.extend(d.push(&stream.as_bytes()[split..]));
            assert_eq!(
                out,
                vec![
                    ev(Some("ping"), "{\"type\": \"ping\"}"),
                    ev(Some("a"), "x\ny"),
                    ev(None, "[DONE]")
                ],
                "split at {split}"
            );
            assert!(!d.has_pending());
        }
    }

    #[test]
    fn multibyte_characters_survive_any_split() {
        let stream = "data: héllo ✓\n\n".as_bytes();
        for split in 0..stream.len() {
            let mut d = SseDecoder::default();
            let mut out = d.push(&stream[..split]);
            out.extend(d.push(&stream[split..]));
            assert_eq!(out, vec![ev(None, "héllo ✓")]);
        }
    }

    #[test]
    fn an_unfinished_event_is_pending() {
        let mut d = SseDecoder::default();
        assert!(d.push(b"data: {\"a\"").is_empty());
        assert!(d.has_pending());
        assert!(d.push(b": 1}\n").is_empty());
        assert!(d.has_pending());
    }
}
