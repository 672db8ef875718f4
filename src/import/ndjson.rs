//! NDJSON: one article per line, as a JSON object with PublishArticleRequest's
//! fields by their proto names:
//!
//! ```json
//! {"title": "...", "body": "...", "byline": "7Dnews London", "tags": ["US & Canada", "Russia"], "published_at": "2019-12-31T10:30:00Z"}
//! ```
//!
//! - `slug`, `title`, `summary`, `body`, `byline`: strings; `tags`: an array
//!   of strings; `published_at`: an RFC 3339 string (any offset, fractional
//!   seconds allowed), converted to UTC.
//! - A missing field, or `null`, is empty (`published_at`: none, i.e. the
//!   time of the import). Whether required fields are there is left to
//!   `domain::article::validate`, as for PublishArticle.
//! - An unknown field (e.g. a typo such as `tittle`) or a field of the wrong
//!   type is an error, and so is anything after the object on its line.
//! - Lines that are empty or only white space are skipped.
//!
//! [`read_ndjson`] reads a whole file line by line with 1-based line
//! numbers, accepting `\r\n` line endings and a UTF-8 byte order mark at the
//! start, and reporting invalid UTF-8 on its line.

use std::io::BufRead;
use std::iter::FusedIterator;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::article::ArticleDraft;

/// One record as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    slug: Option<String>,
    title: Option<String>,
    summary: Option<String>,
    body: Option<String>,
    byline: Option<String>,
    tags: Option<Vec<String>>,
    published_at: Option<String>,
}

/// Parses one line of an NDJSON file: `Ok(None)` for a blank line, the draft
/// for an object, or a readable reason. The line may still carry its `\r`.
pub fn parse_ndjson_line(line: &str) -> Result<Option<ArticleDraft>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    // serde would also take a struct from a JSON array of its fields in order.
    if !line.trim_start().starts_with('{') {
        return Err("expected a JSON object ({...}) on the line".to_owned());
    }
    let record: Record = serde_json::from_str(line).map_err(|error| json_reason(&error))?;
    let published_at = record
        .published_at
        .as_deref()
        .map(parse_timestamp)
        .transpose()?;
    Ok(Some(ArticleDraft {
        slug: record.slug.unwrap_or_default(),
        title: record.title.unwrap_or_default(),
        summary: record.summary.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
        byline: record.byline.unwrap_or_default(),
        tags: record.tags.unwrap_or_default(),
        published_at,
    }))
}

/// serde_json's message, with its position given as a column only (the line
/// number is the file's, reported by the caller).
fn json_reason(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(bare) if error.line() > 0 => format!("{bare} (column {})", error.column()),
        _ => message,
    }
}

fn parse_timestamp(value: &str) -> Result<OffsetDateTime, String> {
    let at = OffsetDateTime::parse(value, &Rfc3339).map_err(|error| {
        format!(
            "published_at {value:?} is not an RFC 3339 timestamp \
             (like \"2019-12-31T10:30:00Z\"): {error}"
        )
    })?;
    // In UTC, which `time` may not hold (9999-12-31T23:30:00-01:00); the
    // years PublishArticle accepts are `domain::article::validate`'s rule.
    at.checked_to_offset(time::UtcOffset::UTC)
        .ok_or_else(|| format!("published_at {value:?} is out of range (years 1 to 9999 in UTC)"))
}

/// Reads an NDJSON file line by line (see [`NdjsonRecords`]).
pub fn read_ndjson<R: BufRead>(reader: R) -> NdjsonRecords<R> {
    NdjsonRecords {
        reader,
        line: 0,
        buffer: Vec::new(),
        done: false,
    }
}

/// Yields `(line number, parse_ndjson_line's result)` for every line of the
/// input, numbered from 1, blank lines included (as `Ok(None)`). A trailing
/// `\r` and a UTF-8 byte order mark at the start of line 1 are ignored;
/// invalid UTF-8 is an error on its line. After a read error (reported on the
/// line being read) the iterator ends.
#[derive(Debug)]
pub struct NdjsonRecords<R> {
    reader: R,
    /// The number of the last line read.
    line: usize,
    buffer: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Iterator for NdjsonRecords<R> {
    type Item = (usize, Result<Option<ArticleDraft>, String>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buffer.clear();
        let line = self.line + 1;
        match self.reader.read_until(b'\n', &mut self.buffer) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                self.line = line;
                let mut bytes = self.buffer.as_slice();
                bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
                if line == 1 {
                    bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
                }
                let result = match std::str::from_utf8(bytes) {
                    Ok(text) => parse_ndjson_line(text),
                    Err(error) => Err(format!("invalid UTF-8: {error}")),
                };
                Some((line, result))
            }
            Err(error) => {
                self.done = true;
                Some((line, Err(format!("cannot read: {error}"))))
            }
        }
    }
}

impl<R: BufRead> FusedIterator for NdjsonRecords<R> {}

#[cfg(test)]
mod tests;
