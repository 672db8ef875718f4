//! NDJSON import files: every line gets a 1-based number and a result (a
//! draft, a blank line, or a reason); drafts go through validation as the
//! import does.
#![no_main]

use article_service::domain::article::validate;
use article_service::import::ndjson::read_ndjson;
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let mut expected_line = 0;
    for (line, result) in read_ndjson(data) {
        expected_line += 1;
        assert_eq!(line, expected_line);
        if let Ok(Some(draft)) = result {
            assert!(draft.published_at.is_none_or(|at| at.offset().is_utc()));
            let _ = validate(draft, OffsetDateTime::UNIX_EPOCH);
        }
    }
});
