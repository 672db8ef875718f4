//! Page text: one article as it was captured from the news site's page
//! (as in `tests/fixtures/`).
//!
//! # Layout
//!
//! ```text
//! [page chrome ...]           city names of the site's world clock (optional)
//! [page clock]                a date line: when the page was captured (optional)
//! title
//! byline
//! publication date line       e.g. `Tue, 31 Dec 2019 10:30 GMT`
//! body paragraphs ...         separated by blank lines
//! tags line                   the last non-empty line, e.g. `US & Canada Russia`
//! ```
//!
//! Blank lines (empty or only white space) may appear anywhere and separate
//! body paragraphs; in the header (chrome, clock, title, byline, publication
//! date) each non-blank line is one item whether or not blank lines separate
//! them. A UTF-8 byte order mark at the start and `\r\n` line endings are
//! accepted. Line numbers in errors count lines of the file, from 1.
//!
//! A date line is a whole line (surrounding white space aside) of the form
//! `Tue, 31 Dec 2019 10:30 GMT`: an English weekday abbreviation and a comma,
//! the day (1 or 2 digits), an English month abbreviation, a 4-digit year,
//! `HH:MM` (the hour may have 1 digit) and `GMT`, separated by white space
//! (names in any case). The publication date must also be a real date and
//! time whose weekday is the one written; the page clock is only recognised,
//! never interpreted.
//!
//! # Which date line is the page clock
//!
//! A capture may lack the chrome and the clock, so the first date line is
//! either the page clock or the publication date. Counting only non-blank
//! lines, let `d` be the position (from 0) of the first date line:
//!
//! - there is no date line: the capture has no clock (and then lacks its
//!   publication date: an error);
//! - `d == 2`, i.e. exactly two lines (title and byline) come before it: it
//!   is the **publication date**, unless the three lines after it are a
//!   non-date line, a non-date line and a date line (title, byline,
//!   publication date), in which case it is the **page clock** after two lines
//!   of chrome (the sample's own shape: `Abu Dhabi`, `New York`, clock, ...);
//! - any other `d` (0, 1, or 3 and more): it is the **page clock**, since a
//!   publication date must follow exactly a title and a byline.
//!
//! With a clock, the title is the first non-blank line after it; without
//! one, the title is the first non-blank line of the file. Then come the
//! byline and the publication date line, each the next non-blank line.
//!
//! The one ambiguous input is a capture without clock whose third body line
//! (counting non-blank lines) is itself a date line: it reads as a capture
//! with two lines of chrome. Real body text does not consist of a bare date.
//!
//! # Fields
//!
//! - title and byline: their line, trimmed of surrounding white space;
//! - `published_at`: the publication date line, in UTC;
//! - body: the lines between the publication date line and the tags line,
//!   kept exactly (only a line ending's `\r` is dropped); consecutive
//!   non-blank lines form a paragraph (joined by `\n`), paragraphs are joined
//!   by `\n\n`, whatever number of blank lines separated them;
//! - tags: the last non-blank line, split into the [`SectionVocabulary`]'s
//!   names (see [`SectionVocabulary::split`]); a line that cannot be split
//!   entirely is an error naming the unmatched words;
//! - slug and summary: empty (the slug is derived when the draft is
//!   validated).

use thiserror::Error;
use time::{Date, Month, OffsetDateTime, Time, Weekday};

use crate::domain::article::ArticleDraft;

/// Why a file (or one record of it) cannot be read, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {reason}")]
pub struct ReadError {
    /// 1-based line number in the file.
    pub line: usize,
    pub reason: String,
}

impl ReadError {
    pub fn new(line: usize, reason: impl Into<String>) -> Self {
        Self {
            line,
            reason: reason.into(),
        }
    }
}

/// The news site's sections, the default vocabulary of tags lines.
pub const SITE_SECTIONS: [&str; 19] = [
    "Middle East",
    "Gulf",
    "Africa",
    "Europe",
    "US & Canada",
    "Russia",
    "Asia",
    "Latin America",
    "World",
    "Economy",
    "Business",
    "Technology",
    "Science",
    "Health",
    "Culture",
    "Lifestyle",
    "Sport",
    "Entertainment",
    "Opinion",
];

/// The section names a tags line is split into. [`Default`] is the site's
/// sections ([`SITE_SECTIONS`]); [`extend`](Self::extend) adds more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionVocabulary {
    /// In the order added; each with its words (never empty).
    sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    /// The words joined by single spaces: the tag name produced.
    name: String,
    words: Vec<String>,
}

impl Default for SectionVocabulary {
    fn default() -> Self {
        let mut vocabulary = Self::empty();
        vocabulary.extend(SITE_SECTIONS);
        vocabulary
    }
}

impl SectionVocabulary {
    /// A vocabulary without any section.
    pub fn empty() -> Self {
        Self {
            sections: Vec::new(),
        }
    }

    /// Adds section names (e.g. from repeated `--section NAME` flags). A name
    /// is its white-space-separated words: surrounding white space is
    /// ignored and inner runs of white space count as one space. Names
    /// without any word, and names already known, are skipped.
    pub fn extend<I>(&mut self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for name in names {
            let words: Vec<String> = name
                .as_ref()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if words.is_empty() || self.sections.iter().any(|s| s.words == words) {
                continue;
            }
            self.sections.push(Section {
                name: words.join(" "),
                words,
            });
        }
    }

    /// The section names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.name.as_str())
    }

    /// Whether `name` (compared word by word, exactly) is a known section.
    pub fn contains(&self, name: &str) -> bool {
        let words: Vec<&str> = name.split_whitespace().collect();
        !words.is_empty() && self.sections.iter().any(|s| s.words == words)
    }

    /// Splits a tags line into section names, longest match first: at each
    /// word, the longest section whose words are exactly the next words of
    /// the line (case included) is taken, falling back to a shorter one only
    /// if the longer one would leave the rest of the line unsplittable.
    /// Returns the names as the vocabulary spells them (words separated by
    /// one space), in line order, repeats included.
    ///
    /// `Err` carries the words that no section covers (those skipped by a
    /// greedy longest-match pass); it is never empty. A line without words
    /// splits into no names.
    pub fn split(&self, line: &str) -> Result<Vec<String>, Vec<String>> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut longest_first: Vec<&Section> = self.sections.iter().collect();
        longest_first.sort_by_key(|s| std::cmp::Reverse(s.words.len()));
        let matches_at = |at: usize, section: &Section| {
            words
                .get(at..at.saturating_add(section.words.len()))
                .is_some_and(|w| w.iter().zip(&section.words).all(|(a, b)| *a == b))
        };

        // choice[i]: the section to take at word i for the rest of the line
        // to split completely, computed from the end (no recursion, so no
        // stack depth that grows with the line).
        let n = words.len();
        let mut choice: Vec<Option<&Section>> = vec![None; n];
        let mut complete = vec![false; n + 1];
        if let Some(end) = complete.last_mut() {
            *end = true;
        }
        for at in (0..n).rev() {
            let found = longest_first.iter().copied().find(|section| {
                matches_at(at, section)
                    && complete
                        .get(at + section.words.len())
                        .copied()
                        .unwrap_or(false)
            });
            if let (Some(section), Some(slot), Some(done)) =
                (found, choice.get_mut(at), complete.get_mut(at))
            {
                *slot = Some(section);
                *done = true;
            }
        }

        if complete.first().copied().unwrap_or(false) {
            let mut names = Vec::new();
            let mut at = 0;
            while let Some(Some(section)) = choice.get(at) {
                names.push(section.name.clone());
                at += section.words.len();
            }
            return Ok(names);
        }

        let mut unmatched = Vec::new();
        let mut at = 0;
        while let Some(word) = words.get(at) {
            match longest_first.iter().find(|s| matches_at(at, s)) {
                Some(section) => at += section.words.len(),
                None => {
                    unmatched.push((*word).to_owned());
                    at += 1;
                }
            }
        }
        if unmatched.is_empty() {
            // Unreachable: a greedy pass that matches every word is a
            // complete split. Kept total rather than asserted.
            unmatched = words.iter().map(|w| (*w).to_owned()).collect();
        }
        Err(unmatched)
    }
}

/// One line of the file: its 1-based number and its text without the line
/// ending.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    text: &'a str,
}

fn is_blank(text: &str) -> bool {
    text.trim().is_empty()
}

/// Parses one captured article page. See the module documentation for the
/// layout and for how the page clock is told from the publication date.
pub fn parse_page_text(
    content: &str,
    sections: &SectionVocabulary,
) -> Result<ArticleDraft, ReadError> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let lines: Vec<Line<'_>> = content
        .split('\n')
        .enumerate()
        .map(|(index, raw)| Line {
            number: index + 1,
            text: raw.strip_suffix('\r').unwrap_or(raw),
        })
        .collect();
    let text: Vec<Line<'_>> = lines
        .iter()
        .copied()
        .filter(|line| !is_blank(line.text))
        .collect();
    let is_date = |at: usize| {
        text.get(at)
            .is_some_and(|line| DateLine::recognise(line.text).is_some())
    };
    let is_text = |at: usize| text.get(at).is_some() && !is_date(at);

    let clock_at = match (0..text.len()).find(|&at| is_date(at)) {
        None => None,
        Some(2) if !(is_text(3) && is_text(4) && is_date(5)) => None,
        Some(at) => Some(at),
    };
    let clock = clock_at.and_then(|at| text.get(at).copied());
    let title_at = clock_at.map_or(0, |at| at + 1);

    let title = match (text.get(title_at), clock) {
        (Some(line), _) if !is_date(title_at) => *line,
        (Some(line), _) => {
            return Err(ReadError::new(
                line.number,
                format!(
                    "expected the title, found a date line {}",
                    excerpt(line.text)
                ),
            ));
        }
        (None, Some(clock)) => {
            return Err(ReadError::new(
                clock.number,
                "expected the title after this page clock line, found the end of the file",
            ));
        }
        (None, None) => {
            return Err(ReadError::new(
                1,
                "expected a title, found a file without text",
            ));
        }
    };
    let byline = match text.get(title_at + 1) {
        Some(line) if !is_date(title_at + 1) => *line,
        Some(line) => {
            return Err(ReadError::new(
                line.number,
                format!(
                    "expected the byline after the title on line {}, found a date line {}",
                    title.number,
                    excerpt(line.text)
                ),
            ));
        }
        None => {
            return Err(ReadError::new(
                title.number,
                "expected a byline after this title line, found the end of the file",
            ));
        }
    };
    let published = match text.get(title_at + 2) {
        Some(line) => *line,
        None => {
            return Err(ReadError::new(
                byline.number,
                format!(
                    "expected a publication date line (like {EXAMPLE_DATE_LINE:?}) after \
                     this byline line, found the end of the file"
                ),
            ));
        }
    };
    let published_at = match DateLine::recognise(published.text) {
        Some(date) => date
            .to_datetime()
            .map_err(|reason| ReadError::new(published.number, reason))?,
        None => {
            return Err(ReadError::new(
                published.number,
                format!(
                    "expected a publication date line (like {EXAMPLE_DATE_LINE:?}) after the \
                     title on line {} and the byline on line {}, found {}",
                    title.number,
                    byline.number,
                    excerpt(published.text)
                ),
            ));
        }
    };

    let tags_line = match text.last() {
        Some(line) if text.len() > title_at + 3 => *line,
        _ => {
            return Err(ReadError::new(
                published.number,
                "expected body paragraphs and then a tags line after this publication date \
                 line, found the end of the file",
            ));
        }
    };
    if text.len() == title_at + 4 {
        return Err(ReadError::new(
            tags_line.number,
            format!(
                "expected body paragraphs between the publication date on line {} and the \
                 tags line, found only this line",
                published.number
            ),
        ));
    }

    let body_lines = lines
        .get(published.number..tags_line.number.saturating_sub(1))
        .unwrap_or_default();
    let body = join_paragraphs(body_lines);

    let tags = sections.split(tags_line.text).map_err(|unmatched| {
        ReadError::new(tags_line.number, unsplittable_tags_reason(&unmatched))
    })?;

    Ok(ArticleDraft {
        slug: String::new(),
        title: title.text.trim().to_owned(),
        summary: String::new(),
        body,
        byline: byline.text.trim().to_owned(),
        tags,
        published_at: Some(published_at),
    })
}

/// Consecutive non-blank lines joined by `\n` form a paragraph; paragraphs
/// are joined by `\n\n`.
fn join_paragraphs(lines: &[Line<'_>]) -> String {
    let mut body = String::new();
    let mut in_paragraph = false;
    let mut paragraphs = 0usize;
    for line in lines {
        if is_blank(line.text) {
            in_paragraph = false;
            continue;
        }
        if in_paragraph {
            body.push('\n');
        } else {
            if paragraphs > 0 {
                body.push_str("\n\n");
            }
            paragraphs += 1;
            in_paragraph = true;
        }
        body.push_str(line.text);
    }
    body
}

fn unsplittable_tags_reason(unmatched: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut words: Vec<String> = unmatched
        .iter()
        .take(SHOWN)
        .map(|word| format!("{word:?}"))
        .collect();
    if unmatched.len() > SHOWN {
        words.push(format!("and {} more", unmatched.len() - SHOWN));
    }
    format!(
        "cannot split the tags line (the last non-empty line) into known sections; \
         unmatched words: {} (unknown sections can be added to the vocabulary)",
        words.join(", ")
    )
}

/// A line quoted in an error message, cut to a readable length.
fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    let text = text.trim();
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", text.get(..cut).unwrap_or(text)),
        None => format!("{text:?}"),
    }
}

const EXAMPLE_DATE_LINE: &str = "Tue, 31 Dec 2019 10:30 GMT";

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
struct DateLine {
    weekday: Weekday,
    day: u8,
    month: Month,
    year: i32,
    hour: u8,
    minute: u8,
}

impl DateLine {
    /// `Tue, 31 Dec 2019 10:30 GMT`, or None if the line has another shape.
    fn recognise(line: &str) -> Option<DateLine> {
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

    /// The moment the line names, in UTC, if it is a real one.
    fn to_datetime(self) -> Result<OffsetDateTime, String> {
        let date = Date::from_calendar_date(self.year, self.month, self.day).map_err(|_| {
            format!(
                "the publication date {} {} {:04} does not exist",
                self.day, self.month, self.year
            )
        })?;
        // PublishArticle's range (years 1 to 9999); a date line has 4 digits.
        if self.year < 1 {
            return Err(format!(
                "the publication date {} {} {:04} is out of range (years 1 to 9999)",
                self.day, self.month, self.year
            ));
        }
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
    use proptest::prelude::*;
    use time::macros::datetime;

    const SAMPLE: &str = include_str!("../../tests/fixtures/us-russia-terrorism-2019-12-31.txt");

    fn parse(content: &str) -> Result<ArticleDraft, ReadError> {
        parse_page_text(content, &SectionVocabulary::default())
    }

    const FIRST_PARAGRAPH: &str = "President Putin has discussed means of cooperation in \
        combating terrorism in a phone conversation with President Trump. Putin, who initiated \
        the call, wished mainly to express his gratitude to Trump for his help in preventing a \
        terrorist act which was scheduled to take place in Russia during the Christmas and New \
        Year holidays.";
    const LAST_PARAGRAPH: &str = "Reuters reported that Trump and Putin's unusually warm \
        relationship has been the subject of intense inquiry since Trump took office. Trump has \
        been facing general opposition from Republican and Democratic lawmakers over warmer ties \
        with Russia, as they suspect that Putin encouraged Trump to become suspicious of \
        Ukraine, thus leading to the president's impeachment this month. The US president \
        awaits an impeachment trial by the Republican-led Senate over charges that he withdrew \
        aid from Ukraine to pressure its government into investigating an American political \
        opponent, USA Today reported.";

    #[test]
    fn parses_the_sample_field_by_field() {
        let draft = parse(SAMPLE).unwrap();
        assert_eq!(
            draft.title,
            "US and Russian Leaders Unite to Combat Terrorism"
        );
        assert_eq!(draft.byline, "7Dnews London");
        assert_eq!(draft.published_at, Some(datetime!(2019-12-31 10:30 UTC)));
        assert_eq!(draft.tags, ["US & Canada", "Russia"]);
        assert_eq!(draft.slug, "");
        assert_eq!(draft.summary, "");

        let paragraphs: Vec<&str> = draft.body.split("\n\n").collect();
        assert_eq!(paragraphs.len(), 6);
        assert_eq!(paragraphs.first().copied(), Some(FIRST_PARAGRAPH));
        assert_eq!(paragraphs.last().copied(), Some(LAST_PARAGRAPH));
        assert!(
            draft
                .body
                .contains("a global threat to both countries\u{2019} security and stability")
        );
        // Every paragraph is a line of the file, unchanged, in order.
        let file_lines: Vec<&str> = SAMPLE.lines().collect();
        let body_lines = file_lines.get(14..25).unwrap();
        let non_blank: Vec<&str> = body_lines
            .iter()
            .copied()
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(paragraphs, non_blank);
        assert!(!draft.body.contains('\r'));
        assert!(!draft.body.starts_with('\n') && !draft.body.ends_with('\n'));
    }

    #[test]
    fn sample_with_crlf_and_bom_parses_the_same() {
        let crlf = format!("\u{feff}{}\r\n", SAMPLE.replace('\n', "\r\n"));
        assert_eq!(parse(&crlf).unwrap(), parse(SAMPLE).unwrap());
    }

    #[test]
    fn capture_without_chrome_and_clock() {
        let content = "US and Russian Leaders Unite to Combat Terrorism\n\n7Dnews London\n\
            Tue, 31 Dec 2019 10:30 GMT\n\nFirst paragraph.\n\n\nSecond paragraph.\n\nUS & Canada Russia\n";
        let draft = parse(content).unwrap();
        assert_eq!(
            draft.title,
            "US and Russian Leaders Unite to Combat Terrorism"
        );
        assert_eq!(draft.byline, "7Dnews London");
        assert_eq!(draft.published_at, Some(datetime!(2019-12-31 10:30 UTC)));
        assert_eq!(draft.body, "First paragraph.\n\nSecond paragraph.");
        assert_eq!(draft.tags, ["US & Canada", "Russia"]);

        // The sample itself, with its chrome and clock cut off.
        let cut = SAMPLE.split_once("06:22 GMT").unwrap().1;
        assert_eq!(parse(cut).unwrap(), parse(SAMPLE).unwrap());
    }

    #[test]
    fn clock_without_chrome_and_other_amounts_of_chrome() {
        let article = "Title\nByline\nTue, 31 Dec 2019 10:30 GMT\nBody.\nRussia";
        for chrome in ["", "Abu Dhabi\n", "Abu Dhabi\nNew York\n", "A\nB\nC\nD\n"] {
            let content = format!("{chrome}Thu, 23 Jan 2020 06:22 GMT\n{article}");
            let draft = parse(&content).unwrap();
            assert_eq!(draft.title, "Title", "{chrome:?}");
            assert_eq!(draft.byline, "Byline");
            assert_eq!(draft.published_at, Some(datetime!(2019-12-31 10:30 UTC)));
            assert_eq!(draft.body, "Body.");
        }
        // Without a clock, body lines after the date stay body.
        let content = "Title\nByline\nTue, 31 Dec 2019 10:30 GMT\nOne\ntwo\n\nThree\nRussia";
        let draft = parse(content).unwrap();
        assert_eq!(draft.title, "Title");
        assert_eq!(draft.body, "One\ntwo\n\nThree");
    }

    #[test]
    fn paragraph_lines_and_surrounding_white_space_are_kept() {
        let content = "  Title  \n\tByline\nTue, 31 Dec 2019 10:30 GMT\n\n  indented\nsecond line \n \t \nnext\n\nRussia Gulf  ";
        let draft = parse(content).unwrap();
        assert_eq!(draft.title, "Title");
        assert_eq!(draft.byline, "Byline");
        assert_eq!(draft.body, "  indented\nsecond line \n\nnext");
        assert_eq!(draft.tags, ["Russia", "Gulf"]);
    }

    #[test]
    fn unsplittable_tags_line_names_its_line_and_words() {
        let content = SAMPLE.replace("US & Canada Russia", "US & Kanada Russia Atlantis");
        let error = parse(&content).unwrap_err();
        assert_eq!(error.line, 27);
        assert!(error.reason.contains(r#""Kanada", "Atlantis""#), "{error}");
        assert!(!error.reason.contains(r#""Russia""#), "{error}");
        assert!(error.to_string().starts_with("line 27: "));

        // Partial words of a section are not a section.
        let content = SAMPLE.replace("US & Canada Russia", "US & Russia");
        let error = parse(&content).unwrap_err();
        assert_eq!(error.line, 27);
        assert!(error.reason.contains(r#""US", "&""#), "{error}");
        // Matching is exact, case included.
        let content = SAMPLE.replace("US & Canada Russia", "us & canada Russia");
        assert_eq!(parse(&content).unwrap_err().line, 27);
    }

    #[test]
    fn extended_vocabulary() {
        let content = SAMPLE.replace("US & Canada Russia", "Russia Arctic  Affairs US & Canada");
        assert!(parse(&content).is_err());
        let mut sections = SectionVocabulary::default();
        sections.extend(["  Arctic \t Affairs ", "", "Russia"]);
        assert!(sections.contains("Arctic Affairs"));
        assert_eq!(sections.names().count(), SITE_SECTIONS.len() + 1);
        let draft = parse_page_text(&content, &sections).unwrap();
        assert_eq!(draft.tags, ["Russia", "Arctic Affairs", "US & Canada"]);
    }

    #[test]
    fn split_takes_the_longest_match_that_completes_the_line() {
        let mut sections = SectionVocabulary::empty();
        sections.extend(["A", "A B", "B C", "C", "A B C D"]);
        let split = |line: &str| sections.split(line);
        assert_eq!(split("A B C"), Ok(vec!["A B".into(), "C".into()]));
        assert_eq!(split("A B C D"), Ok(vec!["A B C D".into()]));
        assert_eq!(split("A B C D A"), Ok(vec!["A B C D".into(), "A".into()]));
        assert_eq!(split("A B C"), Ok(vec!["A B".into(), "C".into()]));
        // A B then C is greedy; here only A then "B C" works.
        let mut sections = SectionVocabulary::empty();
        sections.extend(["A", "A B", "B C"]);
        assert_eq!(sections.split("A B C"), Ok(vec!["A".into(), "B C".into()]));
        assert_eq!(sections.split("A B D"), Err(vec!["D".into()]));
        assert_eq!(sections.split("   "), Ok(vec![]));
    }

    #[test]
    fn missing_pieces_name_a_line_and_what_was_expected() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "expected a title"),
            ("\n \n\t\n", 1, "expected a title"),
            ("Title", 1, "expected a byline"),
            ("Title\n\nByline", 3, "expected a publication date line"),
            (
                "Title\nByline\nNot a date\nBody\nRussia",
                3,
                "expected a publication date line",
            ),
            (
                "Title\nByline\nTue, 31 Dec 2019 10:30 GMT",
                3,
                "expected body paragraphs and then a tags line",
            ),
            (
                "Title\nByline\nTue, 31 Dec 2019 10:30 GMT\n\nRussia",
                5,
                "expected body paragraphs",
            ),
            (
                "Abu Dhabi\nThu, 23 Jan 2020 06:22 GMT\n",
                2,
                "expected the title after this page clock",
            ),
            (
                "Thu, 23 Jan 2020 06:22 GMT\nTue, 31 Dec 2019 10:30 GMT\nBody\nRussia",
                2,
                "expected the title, found a date line",
            ),
            (
                "Thu, 23 Jan 2020 06:22 GMT\nTitle\nTue, 31 Dec 2019 10:30 GMT\nBody\nRussia",
                3,
                "expected the byline",
            ),
            (
                "Thu, 23 Jan 2020 06:22 GMT\nTitle\nByline\nBody\nRussia",
                4,
                "expected a publication date line",
            ),
            (
                "Title\nByline\nMon, 31 Dec 2019 10:30 GMT\nBody\nRussia",
                3,
                "says Monday but 31 December 2019 is a Tuesday",
            ),
            (
                "Title\nByline\nSat, 29 Feb 2019 10:30 GMT\nBody\nRussia",
                3,
                "does not exist",
            ),
            (
                "Title\nByline\nTue, 31 Dec 2019 24:00 GMT\nBody\nRussia",
                3,
                "time 24:00 does not exist",
            ),
            (
                "Title\nByline\nSat, 1 Jan 0000 10:30 GMT\nBody\nRussia",
                3,
                "out of range (years 1 to 9999)",
            ),
            (
                "Title\nByline\nTue, 31 Dec 2019 10:30 GMT\nBody\nNo tags here",
                5,
                r#"unmatched words: "No", "tags", "here""#,
            ),
        ];
        for (content, line, expected) in cases {
            let error = parse(content).unwrap_err();
            assert_eq!(error.line, *line, "{content:?}: {error}");
            assert!(
                error.reason.contains(expected),
                "{content:?}: {error} lacks {expected:?}"
            );
        }
    }

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

    // ---- property tests ----

    fn date_line_of(at: OffsetDateTime) -> String {
        let format = time::macros::format_description!(
            "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute] GMT"
        );
        at.format(&format).unwrap()
    }

    fn arb_minute_date() -> impl Strategy<Value = OffsetDateTime> {
        // 1900-01-01 to about 2100, whole minutes.
        (0i64..200 * 366 * 24 * 60)
            .prop_map(|minutes| datetime!(1900-01-01 0:00 UTC) + time::Duration::minutes(minutes))
    }

    /// A blank line: empty or only spaces and tabs.
    fn arb_blank() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), "[ \t]{1,3}"]
    }

    fn arb_gap(min: usize) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(arb_blank(), min..min + 3)
    }

    /// A body line: any letters, digits and punctuation but no ':' (so never
    /// a date line), possibly indented and with a trailing space.
    fn arb_body_line() -> impl Strategy<Value = String> {
        "[ \t]{0,2}[\\p{L}\\p{N}’'.,;!?&()\"-]{1,10}( [\\p{L}\\p{N}’'.,;!?&()\"-]{1,10}){0,8} ?"
    }

    #[derive(Debug, Clone)]
    struct Page {
        content: String,
        expected: ArticleDraft,
    }

    fn arb_page() -> impl Strategy<Value = Page> {
        let header = (
            prop_oneof![
                Just(None),
                (
                    proptest::collection::vec("[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8})?", 0..4),
                    arb_minute_date(),
                )
                    .prop_map(Some),
            ],
            "[A-Z][A-Za-z0-9 ,.'’!?&-]{0,60}[A-Za-z0-9.!?’]",
            "[A-Z0-9][A-Za-z0-9 ]{0,30}[A-Za-z]",
            arb_minute_date(),
        );
        let body = proptest::collection::vec(
            (arb_gap(1), proptest::collection::vec(arb_body_line(), 1..4)),
            1..7,
        );
        let tags = (
            proptest::collection::vec(proptest::sample::select(SITE_SECTIONS.to_vec()), 1..5),
            "[ \t]{1,2}",
        );
        let layout = (
            proptest::collection::vec(arb_gap(0), 10),
            any::<bool>(), // CRLF
            any::<bool>(), // BOM
            any::<bool>(), // final line ending
        );
        (header, body, tags, layout).prop_map(
            |(
                (clock, title, byline, published_at),
                body,
                (tags, tag_separator),
                (gaps, crlf, bom, final_eol),
            )| {
                let mut gaps = gaps.into_iter();
                let mut lines: Vec<String> = Vec::new();
                lines.extend(gaps.next().unwrap_or_default());
                if let Some((chrome, clock_at)) = clock {
                    for city in chrome {
                        lines.push(city);
                        lines.extend(gaps.next().unwrap_or_default());
                    }
                    lines.push(date_line_of(clock_at));
                }
                lines.extend(gaps.next().unwrap_or_default());
                lines.push(title.clone());
                lines.extend(gaps.next().unwrap_or_default());
                lines.push(byline.clone());
                lines.extend(gaps.next().unwrap_or_default());
                lines.push(date_line_of(published_at));
                let mut paragraphs = Vec::new();
                for (gap, paragraph) in body {
                    lines.extend(gap);
                    lines.extend(paragraph.iter().cloned());
                    paragraphs.push(paragraph.join("\n"));
                }
                lines.extend(gaps.next().unwrap_or_default());
                lines.push(tags.join(&tag_separator));
                lines.extend(gaps.next().unwrap_or_default());

                let mut content = if bom {
                    "\u{feff}".to_owned()
                } else {
                    String::new()
                };
                let eol = if crlf { "\r\n" } else { "\n" };
                content.push_str(&lines.join(eol));
                if final_eol {
                    content.push_str(eol);
                }
                Page {
                    content,
                    expected: ArticleDraft {
                        slug: String::new(),
                        title,
                        summary: String::new(),
                        body: paragraphs.join("\n\n"),
                        byline,
                        tags: tags.into_iter().map(str::to_owned).collect(),
                        published_at: Some(published_at),
                    },
                }
            },
        )
    }

    /// Lines that look like parts of a page, to be shuffled into soup.
    fn arb_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Tue, 31 Dec 2019 10:30 GMT".to_owned()),
            Just("Thu, 23 Jan 2020 06:22 GMT".to_owned()),
            Just("Mon, 31 Dec 2019 10:30 GMT".to_owned()),
            Just("Sat, 31 Feb 2020 10:30 GMT".to_owned()),
            Just("Tue, 31 Dec 2019 99:99 GMT".to_owned()),
            "(Mon|Tue|Xyz|), ?[0-9]{0,3} (Jan|Dec|Foo) [0-9]{0,5} [0-9]{0,3}:?[0-9]{0,3} (GMT|UTC)",
            proptest::sample::select(SITE_SECTIONS.to_vec()).prop_map(str::to_owned),
            Just("US & Canada Russia".to_owned()),
            Just("US &".to_owned()),
            Just("Canada".to_owned()),
            Just(String::new()),
            Just(" \t".to_owned()),
            Just("\r".to_owned()),
            Just("\u{feff}".to_owned()),
            Just("US and Russian Leaders Unite to Combat Terrorism".to_owned()),
            Just("7Dnews London".to_owned()),
            "\\PC{0,30}",
            ".{0,30}",
        ]
    }

    fn check_invariants(draft: &ArticleDraft, sections: &SectionVocabulary) {
        assert!(!draft.title.trim().is_empty());
        assert!(!draft.byline.trim().is_empty());
        assert!(!draft.body.trim().is_empty());
        assert!(draft.published_at.is_some());
        assert!(!draft.tags.is_empty());
        assert!(draft.tags.iter().all(|tag| sections.contains(tag)));
        assert!(draft.slug.is_empty() && draft.summary.is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn well_formed_pages_parse_back(page in arb_page()) {
            let draft = parse(&page.content);
            prop_assert_eq!(draft, Ok(page.expected), "content: {:?}", page.content);
        }

        #[test]
        fn never_panics_on_arbitrary_strings(content in any::<String>()) {
            if let Ok(draft) = parse(&content) {
                check_invariants(&draft, &SectionVocabulary::default());
            }
        }

        #[test]
        fn never_panics_on_line_soup(
            pieces in proptest::collection::vec(
                (arb_piece(), prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")]),
                0..40,
            ),
            extra in proptest::collection::vec(".{0,12}", 0..3),
        ) {
            let content: String = pieces.iter().map(|(piece, sep)| format!("{piece}{sep}")).collect();
            let mut sections = SectionVocabulary::default();
            sections.extend(&extra);
            match parse_page_text(&content, &sections) {
                Ok(draft) => check_invariants(&draft, &sections),
                Err(error) => {
                    prop_assert!(error.line >= 1);
                    prop_assert!(error.line <= content.split('\n').count());
                }
            }
        }

        #[test]
        fn split_never_panics(line in ".{0,80}", extra in proptest::collection::vec(".{0,12}", 0..4)) {
            let mut sections = SectionVocabulary::default();
            sections.extend(&extra);
            match sections.split(&line) {
                Ok(names) => prop_assert!(names.iter().all(|n| sections.contains(n))),
                Err(unmatched) => prop_assert!(!unmatched.is_empty()),
            }
        }

        /// A well-formed page with one character deleted, replaced or
        /// inserted (a control character, NUL, a bidi mark, a line break,
        /// anything): a draft that keeps the invariants, or an error on a
        /// line of the file.
        #[test]
        fn a_mutated_page_parses_or_names_a_line(
            page in arb_page(),
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            c in prop_oneof![
                any::<char>(),
                proptest::sample::select(vec!['\0', '\u{1}', '\u{200f}', '\u{202e}', '\n', '\r', '\t', ':', ',']),
            ],
        ) {
            let mut chars: Vec<char> = page.content.chars().collect();
            let at = at.index(chars.len() + 1);
            match edit {
                0 if at < chars.len() => { chars.remove(at); }
                1 if at < chars.len() => { if let Some(slot) = chars.get_mut(at) { *slot = c; } }
                _ => chars.insert(at, c),
            }
            let content: String = chars.into_iter().collect();
            match parse(&content) {
                Ok(draft) => check_invariants(&draft, &SectionVocabulary::default()),
                Err(error) => {
                    prop_assert!(error.line >= 1);
                    prop_assert!(error.line <= content.split('\n').count());
                }
            }
        }
    }

    #[test]
    fn a_huge_tags_line_is_split_in_linear_time() {
        // 200,000 words: a quadratic or recursive split would take minutes
        // or overflow the stack.
        let line = "US & Canada Middle East Russia ".repeat(40_000);
        let names = SectionVocabulary::default()
            .split(&line)
            .unwrap_or_default();
        assert_eq!(names.len(), 120_000);
        let unmatched = SectionVocabulary::default().split(&format!("{line} Atlantis"));
        assert_eq!(unmatched, Err(vec!["Atlantis".to_owned()]));
    }
}
