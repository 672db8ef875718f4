//! The page-text importer, from the file's bytes: decode (naming the line of
//! invalid UTF-8), parse, then validate as the import does.
#![no_main]

use article_service::domain::article::validate;
use article_service::import::text::parse_page_text;
use article_service::import::{SectionVocabulary, decode_utf8};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|&b| b == b'\n').count();
    let content = match decode_utf8(data) {
        Ok(content) => content,
        Err(error) => {
            assert!((1..=lines).contains(&error.line), "{error}");
            return;
        }
    };
    match parse_page_text(content, &SectionVocabulary::default()) {
        Ok(draft) => {
            assert!(draft.published_at.is_some());
            let _ = validate(draft, OffsetDateTime::UNIX_EPOCH);
        }
        Err(error) => assert!((1..=lines).contains(&error.line), "{error}"),
    }
});
