//! `article-service import FILE...`: reading articles from files.
//!
//! Two formats, both turned into [`ArticleDraft`]s that the caller then
//! validates with `domain::article::validate` (exactly as PublishArticle
//! does) before storing them:
//!
//! - NDJSON ([`ndjson`]): one JSON object per line with the fields of
//!   PublishArticleRequest by their proto names, `published_at` as RFC 3339.
//!   Line numbers come with every record.
//! - Page text ([`text`]): one article as captured from the news site's page
//!   (e.g. `tests/fixtures/`); tags are split against a
//!   [`SectionVocabulary`] that the user may extend.
//!
//! Which one a file is read as: [`Format::for_path`], unless `--format` says.
//!
//! The readers here are pure (no database, no I/O beyond a `BufRead` handed
//! in, no async) and never panic on any input: every problem is an error that
//! names the line it is on.
//!
//! [`ArticleDraft`]: crate::domain::article::ArticleDraft

pub mod ndjson;
mod run;
pub mod text;

pub use run::{FileError, FileSummary, import_file, run};

pub use text::{ReadError, SectionVocabulary};

/// The format of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`.ndjson`, `.jsonl`, `.json`, standard input).
    Ndjson,
    /// A captured article page (anything else).
    Text,
}

impl Format {
    /// The default format of a path given on the command line: `-` (standard
    /// input) and names ending in `.ndjson`, `.jsonl` or `.json` (in any
    /// case) are NDJSON; anything else is page text.
    pub fn for_path(path: &str) -> Format {
        if path == "-" {
            return Format::Ndjson;
        }
        let is_ndjson = [".ndjson", ".jsonl", ".json"]
            .iter()
            .any(|ext| ends_with_ignore_ascii_case(path, ext));
        if is_ndjson {
            Format::Ndjson
        } else {
            Format::Text
        }
    }
}

fn ends_with_ignore_ascii_case(s: &str, suffix: &str) -> bool {
    let (s, suffix) = (s.as_bytes(), suffix.as_bytes());
    s.len()
        .checked_sub(suffix.len())
        .and_then(|start| s.get(start..))
        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

/// Decodes a whole page-text file, naming the line of the first invalid
/// UTF-8 sequence, so that the caller can hand the result to
/// [`text::parse_page_text`].
pub fn decode_utf8(bytes: &[u8]) -> Result<&str, ReadError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let valid = bytes.get(..error.valid_up_to()).unwrap_or_default();
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        ReadError::new(line, format!("invalid UTF-8: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_for_path() {
        assert_eq!(Format::for_path("-"), Format::Ndjson);
        assert_eq!(Format::for_path("articles.ndjson"), Format::Ndjson);
        assert_eq!(Format::for_path("dir/a.JSONL"), Format::Ndjson);
        assert_eq!(Format::for_path("a.Json"), Format::Ndjson);
        assert_eq!(Format::for_path(".json"), Format::Ndjson);
        assert_eq!(
            Format::for_path("us-russia-terrorism-2019-12-31.txt"),
            Format::Text
        );
        assert_eq!(Format::for_path("dir.json/page"), Format::Text);
        assert_eq!(Format::for_path("a.json.txt"), Format::Text);
        assert_eq!(Format::for_path("json"), Format::Text);
        assert_eq!(Format::for_path(""), Format::Text);
        assert_eq!(Format::for_path("ü.jsoné"), Format::Text);
        assert_eq!(Format::for_path("é"), Format::Text);
    }

    #[test]
    fn decode_utf8_names_the_line() {
        assert_eq!(decode_utf8(b"a\nb").ok(), Some("a\nb"));
        let error = decode_utf8(b"one\ntwo\nth\xffree\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.reason.contains("invalid UTF-8"), "{error}");
    }
    proptest::proptest! {
        /// The bytes of a page-text file as they come: the first invalid
        /// UTF-8 sequence is named by its line, and whatever decodes goes on
        /// to the page parser without a panic.
        #[test]
        fn any_bytes_decode_or_name_their_line(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            match decode_utf8(&bytes) {
                Ok(text) => {
                    let _ = text::parse_page_text(text, &SectionVocabulary::default());
                }
                Err(error) => {
                    let valid = std::str::from_utf8(&bytes).map_or_else(|e| e.valid_up_to(), str::len);
                    let newlines = bytes.iter().take(valid).filter(|&&b| b == b'\n').count();
                    proptest::prop_assert_eq!(error.line, newlines + 1);
                    proptest::prop_assert!(error.reason.starts_with("invalid UTF-8"));
                }
            }
        }
    }
}
