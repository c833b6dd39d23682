//! Output caps: keep the head and the tail of long output and say, in the text, how much was cut.

use orchestra_process::Capture;

/// `text` within `max` bytes: unchanged if it fits, else its start and end around a note saying
/// how much was cut.
pub fn cap_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut capture = Capture::new(max);
    capture.push(text.as_bytes());
    let mut out = capture.render(max);
    out.push_str(&format!(
        "\n[output truncated: {} of {} bytes shown]",
        max,
        text.len()
    ));
    out
}

/// Splits `budget` bytes between two streams of lengths `a` and `b`: each gets what it needs if
/// both fit, else a stream shorter than half keeps everything and the other gets the rest.
pub(crate) fn split_budget(a: u64, b: u64, budget: usize) -> (usize, usize) {
    let budget64 = budget as u64;
    if a + b <= budget64 {
        return (a as usize, b as usize);
    }
    let half = budget / 2;
    if a <= half as u64 {
        (a as usize, budget - a as usize)
    } else if b <= half as u64 {
        (budget - b as usize, b as usize)
    } else {
        (budget - half, half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_text_adds_a_note() {
        assert_eq!(cap_text("short".into(), 10), "short");
        let capped = cap_text("x".repeat(100), 10);
        assert!(capped.contains("[... 90 bytes cut ...]"), "{capped}");
        assert!(capped.ends_with("[output truncated: 10 of 100 bytes shown]"));
    }

    #[test]
    fn budgets_favour_the_short_stream() {
        assert_eq!(split_budget(3, 4, 10), (3, 4));
        assert_eq!(split_budget(2, 100, 10), (2, 8));
        assert_eq!(split_budget(100, 1, 10), (9, 1));
        assert_eq!(split_budget(100, 100, 10), (5, 5));
    }
}
