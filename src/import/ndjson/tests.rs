//! Tests of `ndjson`.

use super::*;
use proptest::prelude::*;
use time::macros::datetime;

fn draft(line: &str) -> ArticleDraft {
    parse_ndjson_line(line).unwrap().unwrap()
}

fn error(line: &str) -> String {
    parse_ndjson_line(line).unwrap_err()
}

#[test]
fn a_full_record() {
    let line = r#"{"slug": "given-slug", "title": "US and Russian Leaders Unite to Combat Terrorism", "summary": "S", "body": "One.\n\nTwo countries’.", "byline": "7Dnews London", "tags": ["US & Canada", "Russia"], "published_at": "2019-12-31T10:30:00Z"}"#;
    assert_eq!(
        draft(line),
        ArticleDraft {
            slug: "given-slug".into(),
            title: "US and Russian Leaders Unite to Combat Terrorism".into(),
            summary: "S".into(),
            body: "One.\n\nTwo countries\u{2019}.".into(),
            byline: "7Dnews London".into(),
            tags: vec!["US & Canada".into(), "Russia".into()],
            published_at: Some(datetime!(2019-12-31 10:30 UTC)),
        }
    );
}

#[test]
fn missing_and_null_fields_are_empty() {
    let expected = ArticleDraft {
        title: "T".into(),
        ..ArticleDraft::default()
    };
    assert_eq!(draft(r#"{"title": "T"}"#), expected);
    assert_eq!(
        draft(
            r#"{"title": "T", "slug": null, "summary": null, "body": null, "byline": null, "tags": null, "published_at": null}"#
        ),
        expected
    );
    assert_eq!(draft("{}"), ArticleDraft::default());
    assert_eq!(draft("  {\"title\": \"T\"}  \r"), expected);
}

#[test]
fn timestamps_are_rfc_3339_in_utc() {
    let at = |value: &str| draft(&format!(r#"{{"published_at": "{value}"}}"#)).published_at;
    assert_eq!(
        at("2019-12-31T10:30:00Z"),
        Some(datetime!(2019-12-31 10:30 UTC))
    );
    let shifted = at("2019-12-31T12:30:00.123456+02:00").unwrap();
    assert_eq!(shifted, datetime!(2019-12-31 10:30:00.123456 UTC));
    assert!(shifted.offset().is_utc());
    for bad in [
        "2019-12-31 10:30:00",
        "2019-12-31T10:30:00",
        "31 Dec 2019",
        "",
        "2019-02-30T10:30:00Z",
    ] {
        let reason = error(&format!(r#"{{"published_at": "{bad}"}}"#));
        assert!(
            reason.contains("not an RFC 3339 timestamp"),
            "{bad}: {reason}"
        );
    }
    // Beyond the year 9999 in UTC: not a time `time` can hold.
    let reason = error(r#"{"published_at": "9999-12-31T23:59:59-01:00"}"#);
    assert!(reason.contains("out of range"), "{reason}");
    assert_eq!(
        at("0001-01-01T00:30:00+00:30"),
        Some(datetime!(0001-01-01 00:00 UTC))
    );
    // Before the year 1 in UTC: read, then refused by validation.
    assert_eq!(
        at("0000-06-01T00:00:00Z"),
        Some(datetime!(0000-06-01 00:00 UTC))
    );
    assert_eq!(
        at("0001-01-01T00:30:00+01:00"),
        Some(datetime!(0000-12-31 23:30 UTC))
    );
    let line = r#"{"title": "T", "body": "B", "published_at": "0001-01-01T00:30:00+01:00"}"#;
    let violations =
        crate::domain::article::validate(draft(line), OffsetDateTime::UNIX_EPOCH).unwrap_err();
    let fields: Vec<&str> = violations.iter().map(|v| v.field).collect();
    assert_eq!(fields, ["published_at"]);
}

#[test]
fn invalid_lines() {
    let reason = error(r#"{"tittle": "T"}"#);
    assert!(reason.contains("unknown field `tittle`"), "{reason}");
    assert!(reason.contains("(column "), "{reason}");
    assert!(!reason.contains("line 1"), "{reason}");
    let reason = error(r#"{"tags": "Russia"}"#);
    assert!(reason.contains("invalid type: string"), "{reason}");
    assert!(reason.contains("expected a sequence"), "{reason}");
    assert!(error(r#"{"title": 1}"#).contains("invalid type: integer"));
    assert!(error(r#"{"tags": ["Russia", null]}"#).contains("invalid type: null"));
    assert!(error(r#"{"published_at": 1577788200}"#).contains("invalid type"));
    assert!(error(r#"{"title": "a", "title": "b"}"#).contains("duplicate field"));
    assert!(error(r#"{"title": "T"} {"title": "U"}"#).contains("trailing characters"));
    assert!(error(r#"["T"]"#).contains("expected a JSON object"));
    assert!(
        error(r#"["s", "t", "", "b", "", [], "2019-12-31T10:30:00Z"]"#)
            .contains("expected a JSON object")
    );
    assert!(error("\"title\"").contains("expected a JSON object"));
    assert!(error(r#"{"title": "T""#).contains("EOF"));
    assert!(error("\u{feff}{}").contains("expected a JSON object"));
    assert!(error("\u{a0}{}").contains("expected value"));
}

#[test]
fn blank_lines_are_skipped() {
    for blank in ["", " ", "\t \r", "\r"] {
        assert_eq!(parse_ndjson_line(blank), Ok(None), "{blank:?}");
    }
}

#[test]
fn reads_a_file_with_line_numbers() {
    let file = b"\xEF\xBB\xBF{\"title\": \"One\"}\r\n\r\n{\"title\": \"Two\"}\n{\"title\": \"\xff\"}\n{\"tittle\": \"x\"}\n  \n{\"title\": \"Last\"}";
    let records: Vec<_> = read_ndjson(&file[..]).collect();
    let numbers: Vec<usize> = records.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6, 7]);
    let title = |index: usize| match records.get(index) {
        Some((_, Ok(Some(draft)))) => Some(draft.title.clone()),
        _ => None,
    };
    assert_eq!(title(0).as_deref(), Some("One"));
    assert!(matches!(records.get(1), Some((2, Ok(None)))));
    assert_eq!(title(2).as_deref(), Some("Two"));
    assert!(matches!(records.get(3), Some((4, Err(reason))) if reason.contains("invalid UTF-8")));
    assert!(matches!(records.get(4), Some((5, Err(reason))) if reason.contains("unknown field")));
    assert!(matches!(records.get(5), Some((6, Ok(None)))));
    assert_eq!(title(6).as_deref(), Some("Last"));

    // A byte order mark is only one at the start of the file.
    let records: Vec<_> = read_ndjson(&b"{}\n\xEF\xBB\xBF{}\n"[..]).collect();
    assert!(matches!(records.get(1), Some((2, Err(_)))));
    // A final line ending does not make an extra line.
    assert_eq!(read_ndjson(&b"{}\n{}\n"[..]).count(), 2);
    assert_eq!(read_ndjson(&b""[..]).count(), 0);
}

#[test]
fn a_read_error_ends_the_records() {
    struct Failing;
    impl std::io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let input = std::io::Read::chain(&b"{}\n"[..], Failing);
    let records: Vec<_> = read_ndjson(std::io::BufReader::new(input)).collect();
    assert_eq!(records.len(), 2);
    assert!(matches!(records.get(1), Some((2, Err(reason))) if reason.contains("disk on fire")));
}

fn arb_json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => proptest::sample::select(vec![
            "slug", "title", "summary", "body", "byline", "tags", "published_at",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,8}",
    ];
    proptest::collection::btree_map(key, arb_json_value(), 0..8)
        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect()).to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn line_parser_never_panics(line in any::<String>()) {
        let _ = parse_ndjson_line(&line);
    }

    #[test]
    fn line_parser_never_panics_on_json_soup(line in arb_record()) {
        if let Ok(Some(draft)) = parse_ndjson_line(&line) {
            prop_assert!(draft.published_at.is_none_or(|at| at.offset().is_utc()));
        }
    }

    #[test]
    fn reader_never_panics_and_numbers_every_line(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let numbers: Vec<usize> = read_ndjson(&bytes[..]).map(|(n, _)| n).collect();
        let expected: Vec<usize> = (1..=bytes.split(|&b| b == b'\n').count()).collect();
        let expected = if bytes.is_empty() {
            Vec::new()
        } else if bytes.ends_with(b"\n") {
            expected.get(..expected.len() - 1).unwrap_or_default().to_vec()
        } else {
            expected
        };
        prop_assert_eq!(numbers, expected);
    }

    #[test]
    fn well_formed_records_parse_back(
        title in ".{0,30}",
        body in "(.|\n){0,60}",
        tags in proptest::collection::vec(".{0,10}", 0..4),
        seconds in 0i64..253_402_300_799,
    ) {
        let published_at = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
        let line = serde_json::json!({
            "title": title,
            "body": body,
            "tags": tags,
            "published_at": published_at.format(&Rfc3339).unwrap(),
        })
        .to_string();
        let expected = ArticleDraft {
            title,
            body,
            tags,
            published_at: Some(published_at),
            ..ArticleDraft::default()
        };
        prop_assert_eq!(parse_ndjson_line(&line), Ok(Some(expected)));
    }

    /// Every field, any text in it (control characters, NUL, quotes,
    /// backslashes, RTL marks), and `published_at` at any offset: the
    /// line parses back to exactly what was written, in UTC.
    #[test]
    fn every_field_round_trips_with_any_text(
        strings in proptest::collection::vec(any::<String>(), 5),
        tags in proptest::collection::vec(any::<String>(), 0..4),
        seconds in 0i64..253_402_214_400,
        nanos in 0u32..1_000_000_000,
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let [slug, title, summary, body, byline] = <[String; 5]>::try_from(strings).unwrap_or_default();
        let utc = OffsetDateTime::from_unix_timestamp(seconds)
            .and_then(|at| at.replace_nanosecond(nanos))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap_or(time::UtcOffset::UTC);
        // A local time that still lies within the years 1 to 9999.
        let local = utc.checked_to_offset(offset).filter(|at| (1..=9999).contains(&at.year()));
        prop_assume!(local.is_some());
        let line = serde_json::json!({
            "slug": slug,
            "title": title,
            "summary": summary,
            "body": body,
            "byline": byline,
            "tags": tags,
            "published_at": local.and_then(|at| at.format(&Rfc3339).ok()),
        })
        .to_string();
        let expected = ArticleDraft {
            slug,
            title,
            summary,
            body,
            byline,
            tags,
            published_at: Some(utc),
        };
        let parsed = parse_ndjson_line(&line);
        prop_assert!(parsed.as_ref().is_ok_and(|draft| draft.as_ref().is_some_and(|d| d.published_at.is_some_and(|at| at.offset().is_utc()))));
        prop_assert_eq!(parsed, Ok(Some(expected)));
    }

    /// One byte of a valid file changed to anything: every line still
    /// gets a result (a draft or a reason), nothing panics.
    #[test]
    fn a_corrupted_byte_never_panics(
        title in ".{0,20}",
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let line = serde_json::json!({"title": title, "tags": ["US & Canada"], "published_at": "2019-12-31T10:30:00Z"}).to_string();
        let mut file = format!("{line}\n{line}\n").into_bytes();
        let at = at.index(file.len());
        if let Some(slot) = file.get_mut(at) {
            *slot = byte;
        }
        let lines = read_ndjson(&file[..]).count();
        let expected = file.split(|&b| b == b'\n').count() - usize::from(file.ends_with(b"\n"));
        prop_assert_eq!(lines, expected);
    }
}
