//! Calendar arithmetic on epoch milliseconds (UTC), without any time-zone database.

pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;
/// An average month (30.44 days), for hazard rates quoted per month.
pub const MONTH: i64 = 2_629_746_000;

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for a count of days since 1970-01-01.
pub const fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Epoch milliseconds at midnight UTC of the given date.
pub const fn date(y: i64, m: i64, d: i64) -> i64 {
    days_from_civil(y, m, d) * DAY
}

/// First instant of the lake's history (customers, subscriptions and orders start here).
pub const HISTORY_START: i64 = date(2023, 1, 1);
/// First instant of the analysis period (surveys, tickets, ...).
pub const PERIOD_START: i64 = date(2025, 1, 1);
/// End of the data (exclusive): the lake is a snapshot taken at 2025-07-01T00:00:00Z, so no
/// timestamp reaches this instant.
pub const PERIOD_END: i64 = date(2025, 7, 1);

/// Day of week, 0 = Monday .. 6 = Sunday.
pub fn weekday(ms: i64) -> i64 {
    (ms.div_euclid(DAY) + 3).rem_euclid(7)
}

/// Hour of the day (fractional) in UTC shifted by `offset_hours`.
pub fn local_hour(ms: i64, offset_hours: i64) -> f64 {
    (ms + offset_hours * HOUR).rem_euclid(DAY) as f64 / HOUR as f64
}

/// Whether `ms` lies in [from, to).
pub fn within(ms: i64, from: i64, to: i64) -> bool {
    ms >= from && ms < to
}

/// "YYYY-MM-DD" for the day containing `ms`.
pub fn day_string(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Relative activity by local hour of day for people (customers contacting support, shopping,
/// browsing): low at night, a plateau in working hours, a smaller evening bump.
pub fn diurnal(hour: f64) -> f64 {
    match hour as i64 {
        0..=5 => 0.08,
        6 => 0.2,
        7 => 0.45,
        8 => 0.75,
        9..=16 => 1.0,
        17 => 0.85,
        18..=20 => 0.7,
        21 => 0.5,
        22 => 0.3,
        _ => 0.15,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(date(2025, 1, 1), 1_735_689_600_000);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(weekday(date(2025, 6, 30)), 0); // a Monday
        assert_eq!(day_string(date(2025, 6, 1) + 5 * HOUR), "2025-06-01");
    }
}
