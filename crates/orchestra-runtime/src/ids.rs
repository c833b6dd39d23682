//! Session ids (`20261120-223145-a1b2c3`: UTC date and time plus random hex) and dates.

/// A new session id: UTC date and time plus random hex, e.g. `20261120-223145-a1b2c3`.
pub fn new_session_id() -> String {
    let secs = orchestra_store::system_now_ms() / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let suffix: u32 = rand::random::<u32>() & 0x00ff_ffff;
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{suffix:06x}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (UTC).
pub fn date_of_days(days: u64) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
