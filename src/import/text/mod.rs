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
//! - `published_at`: the publication date line, in UTC (its year, 0 to
//!   9999 as written, is checked by `domain::article::validate`);
//! - body: the lines between the publication date line and the tags line,
//!   kept exactly (only a line ending's `\r` is dropped); consecutive
//!   non-blank lines form a paragraph (joined by `\n`), paragraphs are joined
//!   by `\n\n`, whatever number of blank lines separated them;
//! - tags: the last non-blank line, split into the [`SectionVocabulary`]'s
//!   names (see [`SectionVocabulary::split`]); a line that cannot be split
//!   entirely is an error naming the unmatched words;
//! - slug and summary: empty (the slug is derived when the draft is
//!   validated).
//!
//! # Files
//!
//! - `page.rs`: the page's items in order (chrome, clock, title, byline,
//!   publication date, body, tags line) and the draft made of them;
//! - `date_line.rs`: date lines, recognised and turned into a UTC time;
//! - `body.rs`: body lines joined into paragraphs;
//! - `sections.rs`: the tags line split against a [`SectionVocabulary`].

mod body;
mod date_line;
mod page;
mod sections;

use thiserror::Error;

pub use page::{Page, parse_page, parse_page_text};
pub use sections::{SITE_SECTIONS, SectionVocabulary};

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

/// What the tests of every part share: the sample page, and parsing with the
/// site's sections.
#[cfg(test)]
mod sample {
    use super::{ReadError, SectionVocabulary, parse_page_text};
    use crate::domain::article::ArticleDraft;

    pub const SAMPLE: &str =
        include_str!("../../../tests/fixtures/us-russia-terrorism-2019-12-31.txt");

    pub fn parse(content: &str) -> Result<ArticleDraft, ReadError> {
        parse_page_text(content, &SectionVocabulary::default())
    }
}
