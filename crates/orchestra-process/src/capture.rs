//! Output capture within a cap: the head and the tail of a stream are kept, with the total
//! length, so memory stays bounded however much a process writes.

use std::collections::VecDeque;

/// A byte stream kept within a limit: the first half of the limit and the last half, plus the total
/// length. Memory stays bounded however much the stream produces.
#[derive(Clone, Debug)]
pub struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    /// A capture keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        let head_cap = limit - limit / 2;
        Capture {
            head_cap,
            tail_cap: limit / 2,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < self.head_cap {
            let n = bytes.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if self.tail_cap == 0 {
            return;
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Total bytes the stream produced.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The most bytes kept.
    pub fn limit(&self) -> usize {
        self.head_cap + self.tail_cap
    }

    /// Whether every byte of the stream was kept (nothing was cut).
    pub fn is_complete(&self) -> bool {
        (self.head.len() + self.tail.len()) as u64 == self.total
    }

    /// The stream as text within the capture's limit (see [`Capture::render`]).
    pub fn text(&self) -> String {
        self.render(self.limit())
    }

    /// The stream as text within `budget` bytes (at most the capture's limit): the whole stream
    /// if it fits, else its start and end around a line saying how many bytes were cut.
    pub fn render(&self, budget: usize) -> String {
        let kept = self.head.len() + self.tail.len();
        let contiguous = kept as u64 == self.total;
        if contiguous && kept <= budget {
            let mut all = self.head.clone();
            all.extend(self.tail.iter());
            return String::from_utf8_lossy(&all).into_owned();
        }
        let first_len = (budget - budget / 2).min(self.head.len());
        let last_len = budget / 2;
        let last: Vec<u8> = if contiguous {
            // Nothing was dropped: the end of the stream may reach back into `head`.
            let mut all = self.head.clone();
            all.extend(self.tail.iter());
            all[all.len() - last_len.min(all.len())..].to_vec()
        } else {
            let skip = self.tail.len().saturating_sub(last_len);
            self.tail.iter().skip(skip).copied().collect()
        };
        let first = utf8_prefix(&self.head[..first_len]);
        let last = utf8_suffix(&last);
        let cut = self.total.saturating_sub((first.len() + last.len()) as u64);
        let (first, last) = (
            String::from_utf8_lossy(first),
            String::from_utf8_lossy(last),
        );
        let mut out = String::with_capacity(first.len() + last.len() + 64);
        out.push_str(&first);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("[... {cut} bytes cut ...]\n"));
        out.push_str(&last);
        out
    }
}

/// `bytes` without an incomplete UTF-8 character at its end.
fn utf8_prefix(bytes: &[u8]) -> &[u8] {
    // Find the start of the last character (at most 3 continuation bytes back).
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let b = bytes[len - back];
        if b & 0b1100_0000 != 0b1000_0000 {
            let need = match b {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            return if back < need {
                &bytes[..len - back]
            } else {
                bytes
            };
        }
    }
    bytes
}

/// `bytes` without UTF-8 continuation bytes at its start (the rest of a cut character).
fn utf8_suffix(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take(3)
        .take_while(|b| **b & 0b1100_0000 == 0b1000_0000)
        .count();
    &bytes[skip..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_streams_are_kept_whole() {
        let mut c = Capture::new(10);
        c.push(b"abc");
        c.push(b"def");
        assert_eq!(c.render(10), "abcdef");
        assert_eq!(c.total(), 6);
    }

    #[test]
    fn long_streams_keep_head_and_tail() {
        let mut c = Capture::new(10);
        for chunk in [b"01234".as_slice(), b"56789", b"abcde", b"fghij"] {
            c.push(chunk);
        }
        assert_eq!(c.total(), 20);
        assert_eq!(c.render(10), "01234\n[... 10 bytes cut ...]\nfghij");
        assert_eq!(c.render(4), "01\n[... 16 bytes cut ...]\nij");
    }

    #[test]
    fn a_big_single_push_keeps_its_end() {
        let mut c = Capture::new(6);
        c.push(b"abcdefghijklmnop");
        assert_eq!(c.render(6), "abc\n[... 10 bytes cut ...]\nnop");
    }

    #[test]
    fn contiguous_but_over_budget_reaches_into_head() {
        let mut c = Capture::new(10);
        c.push(b"abcdefgh");
        assert_eq!(c.render(4), "ab\n[... 4 bytes cut ...]\ngh");
    }

    #[test]
    fn cuts_never_split_characters() {
        let mut c = Capture::new(6);
        c.push("ééééééééé".as_bytes());
        let s = c.render(6);
        assert!(!s.contains('\u{fffd}'), "{s}");
        assert!(s.starts_with('é') && s.ends_with('é'), "{s}");
    }
}
