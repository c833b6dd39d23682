//! Durations as people read them (`250ms`, `1.5s`, `2m 30s`, `1h`, `3d 4h`): the one formatter
//! of every message, progress line and report.

use std::fmt;
use std::time::Duration;

use crate::values::Dur;

/// A duration as people write it, to at most two units: `250ms`, `5s`, `1.5s`, `5m`,
/// `2m 30s`, `1h`, `1h 30m`, `2d`, `2d 3h`. Below a second it is exact to the millisecond;
/// below a minute to a tenth of a second (rounded down); above that the smaller unit is
/// rounded down.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (days, hours, mins, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, mins, s) {
        (0, 0, 0, s) => match d.subsec_millis() / 100 {
            0 => format!("{s}s"),
            tenths => format!("{s}.{tenths}s"),
        },
        (0, 0, m, 0) => format!("{m}m"),
        (0, 0, m, s) => format!("{m}m {s}s"),
        (0, h, 0, _) => format!("{h}h"),
        (0, h, m, _) => format!("{h}h {m}m"),
        (d, 0, _, _) => format!("{d}d"),
        (d, h, _, _) => format!("{d}d {h}h"),
    }
}

impl fmt::Display for Dur {
    /// See [`fmt_duration`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        for (d, text) in [
            (ms(0), "0ms"),
            (ms(250), "250ms"),
            (ms(999), "999ms"),
            (s(1), "1s"),
            (s(5), "5s"),
            (ms(1500), "1.5s"),
            (ms(1099), "1s"),
            (ms(59_950), "59.9s"),
            (s(60), "1m"),
            (s(300), "5m"),
            (s(150), "2m 30s"),
            (ms(150_700), "2m 30s"),
            (s(3600), "1h"),
            (s(5400), "1h 30m"),
            (s(5410), "1h 30m"),
            (s(86_400), "1d"),
            (s(2 * 86_400 + 3 * 3600 + 59), "2d 3h"),
            (Duration::MAX, "213503982334601d 7h"),
        ] {
            assert_eq!(fmt_duration(d), text, "{d:?}");
        }
        assert_eq!(Dur(s(600)).to_string(), "10m");
    }
}
