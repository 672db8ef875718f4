//! Date lines (`Tue, 31 Dec 2019 10:30 GMT`): recognised by their shape,
//! then checked against the calendar.

use time::{Date, Month, OffsetDateTime, Time, Weekday};

/// A date line, for error messages.
pub(super) const EXAMPLE_DATE_LINE: &str = "Tue, 31 Dec 2019 10:30 GMT";

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

const MONTHS: [(&str, Month); 12] = [
    ("Jan", Month::January),
    ("Feb", Month::February),
    ("Mar", Month::March),
    ("Apr", Month::April),
    ("May", Month::May),
    ("Jun", Month::June),
    ("Jul", Month::July),
    ("Aug", Month::August),
    ("Sep", Month::September),
    ("Oct", Month::October),
    ("Nov", Month::November),
    ("Dec", Month::December),
];

/// A line with the shape of a date line; its values are not yet checked
/// against the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DateLine {
    weekday: Weekday,
    day: u8,
    month: Month,
    year: i32,
    hour: u8,
    minute: u8,
}

impl DateLine {
    /// `Tue, 31 Dec 2019 10:30 GMT`, or None if the line has another shape.
    pub(super) fn recognise(line: &str) -> Option<DateLine> {
        let mut tokens = line.split_whitespace();
        let weekday = tokens.next()?.strip_suffix(',')?;
        let day = tokens.next()?;
        let month = tokens.next()?;
        let year = tokens.next()?;
        let (hour, minute) = tokens.next()?.split_once(':')?;
        let zone = tokens.next()?;
        if tokens.next().is_some() || !zone.eq_ignore_ascii_case("GMT") {
            return None;
        }
        Some(DateLine {
            weekday: lookup(&WEEKDAYS, weekday)?,
            day: digits(day, 1, 2)?.try_into().ok()?,
            month: lookup(&MONTHS, month)?,
            year: i32::from(digits(year, 4, 4)?),
            hour: digits(hour, 1, 2)?.try_into().ok()?,
            minute: digits(minute, 2, 2)?.try_into().ok()?,
        })
    }

    /// The moment the line names, in UTC, if it is a real one. Any year of
    /// 4 digits is one (0000 too: PublishArticle's years are
    /// `domain::article::validate`'s to check).
    pub(super) fn to_datetime(self) -> Result<OffsetDateTime, String> {
        let date = Date::from_calendar_date(self.year, self.month, self.day).map_err(|_| {
            format!(
                "the publication date {} {} {:04} does not exist",
                self.day, self.month, self.year
            )
        })?;
        if date.weekday() != self.weekday {
            return Err(format!(
                "the publication date line says {} but {} {} {:04} is a {}",
                self.weekday,
                self.day,
                self.month,
                self.year,
                date.weekday()
            ));
        }
        let time = Time::from_hms(self.hour, self.minute, 0).map_err(|_| {
            format!(
                "the publication time {:02}:{:02} does not exist",
                self.hour, self.minute
            )
        })?;
        Ok(date.with_time(time).assume_utc())
    }
}

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
}

/// The value of `min..=max` ASCII digits (max <= 4, so it fits).
fn digits(token: &str, min: usize, max: usize) -> Option<u16> {
    if token.len() < min || token.len() > max || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn date_lines() {
        let parsed = |line: &str| DateLine::recognise(line).map(DateLine::to_datetime);
        assert_eq!(
            parsed("Tue, 31 Dec 2019 10:30 GMT"),
            Some(Ok(datetime!(2019-12-31 10:30 UTC)))
        );
        assert_eq!(
            parsed("  wed,  1  jan 2020 9:05 gmt "),
            Some(Ok(datetime!(2020-01-01 09:05 UTC)))
        );
        assert_eq!(
            parsed("Thu, 02 Jan 2020 00:00 GMT"),
            Some(Ok(datetime!(2020-01-02 00:00 UTC)))
        );
        assert_eq!(
            parsed("Sat, 1 Jan 0000 10:30 GMT"),
            Some(Ok(datetime!(0000-01-01 10:30 UTC)))
        );
        assert_eq!(
            parsed("Fri, 31 Dec 9999 23:59 GMT"),
            Some(Ok(datetime!(9999-12-31 23:59 UTC)))
        );
        for not_a_date in [
            "Tue 31 Dec 2019 10:30 GMT",
            "Tue, 31 Dec 2019 10:30 UTC",
            "Tue, 31 Dec 2019 10:30",
            "Tue, 31 Dec 2019 10:30 GMT extra",
            "Tue, 31 December 2019 10:30 GMT",
            "Tue, 131 Dec 2019 10:30 GMT",
            "Tue, 31 Dec 19 10:30 GMT",
            "Tue, 31 Dec 2019 10:3 GMT",
            "Tue, 31 Dec 2019 1030 GMT",
            "Tue, 31 Dec 2019 10:30:00 GMT",
            "Tue, +1 Dec 2019 10:30 GMT",
            "Tue, ３１ Dec 2019 10:30 GMT",
            "Tuesday, 31 Dec 2019 10:30 GMT",
            "",
        ] {
            assert_eq!(DateLine::recognise(not_a_date), None, "{not_a_date:?}");
        }
    }

    #[test]
    fn a_date_line_that_names_no_real_moment_says_why() {
        let reason = |line: &str| {
            DateLine::recognise(line)
                .map(DateLine::to_datetime)
                .and_then(Result::err)
                .unwrap_or_default()
        };
        assert!(
            reason("Mon, 31 Dec 2019 10:30 GMT")
                .contains("says Monday but 31 December 2019 is a Tuesday")
        );
        assert!(reason("Sat, 29 Feb 2019 10:30 GMT").contains("29 February 2019 does not exist"));
        assert!(reason("Tue, 31 Dec 2019 24:00 GMT").contains("time 24:00 does not exist"));
        assert!(reason("Tue, 31 Dec 2019 10:60 GMT").contains("time 10:60 does not exist"));
    }
}
