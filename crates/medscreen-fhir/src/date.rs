//! Calendar dates as FHIR writes them (`2021`, `2021-06`, `2021-06-01`, `2021-06-01T10:00:00+02:00`).
//!
//! Screening asks only "before or after the evaluation date" and "how many whole years", so a date is
//! kept as its calendar day as written, without converting the time zone: a result taken late in the
//! evening of 31 May in New York is on 31 May here. Partial dates take the first day of their period.

use std::fmt;

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day, 1..=31.
    pub day: u8,
}

impl Date {
    /// Parse the date part of a FHIR `date`, `dateTime` or `instant`. `None` if it is not one.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(r)?;
            if part.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(part).ok()?.parse().ok()
            } else {
                None
            }
        };
        let year = i32::try_from(digits(0..4)?).ok()?;
        let (month, day, end) = match b.get(4) {
            None => (1, 1, 4),
            Some(b'-') => {
                let month = digits(5..7)?;
                match b.get(7) {
                    None => (month, 1, 7),
                    Some(b'-') => (month, digits(8..10)?, 10),
                    Some(_) => return None,
                }
            }
            Some(_) => return None,
        };
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month as u8).into() {
            return None;
        }
        // After the day only a time may follow.
        if end == 10 && b.get(10).is_some_and(|&c| c != b'T') {
            return None;
        }
        if end < 10 && b.len() > end {
            return None;
        }
        Some(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    /// Days since 1970-01-01 (negative before), for windows.
    pub fn days(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The day `days` after 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Today in UTC.
    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Date::from_days(i64::try_from(secs / 86_400).unwrap_or(0))
    }

    /// Whole years from `self` (a birth date) to `on`; negative if `on` is earlier.
    pub fn years_until(self, on: Date) -> i64 {
        let mut years = i64::from(on.year) - i64::from(self.year);
        if (on.month, on.day) < (self.month, self.day) {
            years -= 1;
        }
        years
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::Date;

    #[test]
    fn parses_fhir_forms() {
        let d = |y, m, d| {
            Some(Date {
                year: y,
                month: m,
                day: d,
            })
        };
        assert_eq!(Date::parse("2021"), d(2021, 1, 1));
        assert_eq!(Date::parse("2021-06"), d(2021, 6, 1));
        assert_eq!(Date::parse("2021-06-30"), d(2021, 6, 30));
        assert_eq!(Date::parse("2021-06-30T23:59:59-04:00"), d(2021, 6, 30));
        assert_eq!(Date::parse("2020-02-29"), d(2020, 2, 29));
        for bad in [
            "",
            "21",
            "2021-13",
            "2021-02-30",
            "2021-6-1",
            "2021-06-01x",
            "abcd",
            "2021-",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_round_trip_and_age() {
        for s in ["1970-01-01", "1915-07-03", "2000-02-29", "2024-12-31"] {
            let d = Date::parse(s).unwrap();
            assert_eq!(Date::from_days(d.days()), d);
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Date::parse("1970-01-02").unwrap().days(), 1);
        let birth = Date::parse("2003-06-16").unwrap();
        assert_eq!(birth.years_until(Date::parse("2021-06-15").unwrap()), 17);
        assert_eq!(birth.years_until(Date::parse("2021-06-16").unwrap()), 18);
    }
}
