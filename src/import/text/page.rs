//! The page's items in order (chrome, clock, title, byline, publication
//! date, body, tags line), each found by its place among the non-blank
//! lines, and the draft made of them.

use super::body::join_paragraphs;
use super::date_line::{DateLine, EXAMPLE_DATE_LINE};
use super::sections::unsplittable_tags_reason;
use super::{Line, ReadError, SectionVocabulary, is_blank};
use crate::domain::article::ArticleDraft;

/// A parsed page: its draft, and the lines of the file its fields came
/// from that the caller may have to name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub draft: ArticleDraft,
    pub lines: FieldLines,
}

/// Where the page's fields were read from, by line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLines {
    title_line: usize,
    byline_line: usize,
    published_at_line: usize,
    /// The body's first line (the first with text after the date).
    body_line: usize,
    tags_line: usize,
}

impl FieldLines {
    /// The line a field of the draft was read from (the title's for a
    /// field the page has no line for): where an import names a violation.
    pub fn line_of(&self, field: &str) -> usize {
        match field {
            "published_at" => self.published_at_line,
            "byline" => self.byline_line,
            "body" => self.body_line,
            field if field.starts_with("tags") => self.tags_line,
            _ => self.title_line,
        }
    }
}

/// Parses one captured article page into its draft. See the module
/// documentation for the layout and for how the page clock is told from the
/// publication date.
pub fn parse_page_text(
    content: &str,
    sections: &SectionVocabulary,
) -> Result<ArticleDraft, ReadError> {
    parse_page(content, sections).map(|page| page.draft)
}

/// [`parse_page_text`], also saying where the fields were.
pub fn parse_page(content: &str, sections: &SectionVocabulary) -> Result<Page, ReadError> {
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

    Ok(Page {
        draft: ArticleDraft {
            slug: String::new(),
            title: title.text.trim().to_owned(),
            summary: String::new(),
            body,
            byline: byline.text.trim().to_owned(),
            tags,
            published_at: Some(published_at),
        },
        lines: FieldLines {
            title_line: title.number,
            byline_line: byline.number,
            published_at_line: published.number,
            body_line: text
                .get(title_at + 3)
                .map_or(published.number + 1, |line| line.number),
            tags_line: tags_line.number,
        },
    })
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

#[cfg(test)]
mod tests;
