//! Tests of `page`.

use super::super::SITE_SECTIONS;
use super::super::sample::{SAMPLE, parse};
use super::*;
use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;

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
fn the_field_lines_are_named_for_the_caller() {
    let page = parse_page(SAMPLE, &SectionVocabulary::default()).unwrap();
    assert_eq!(page.lines.line_of("published_at"), 13);
    // Line 14 is blank: the body begins on 15.
    assert_eq!(page.lines.line_of("body"), 15);
    assert_eq!(SAMPLE.lines().nth(12), Some("Tue, 31 Dec 2019 10:30 GMT"));
    // The year 0 reads; the years PublishArticle takes are validation's
    // rule (`domain::article::validate`), which the import applies.
    let content = "Title\nByline\n\nSat, 1 Jan 0000 10:30 GMT\nBody\nRussia";
    let page = parse_page(content, &SectionVocabulary::default()).unwrap();
    let lines = page.lines;
    assert_eq!(
        [
            "title",
            "byline",
            "published_at",
            "body",
            "tags[0]",
            "summary"
        ]
        .map(|field| lines.line_of(field)),
        [1, 2, 4, 5, 6, 1]
    );
    assert_eq!(
        page.draft.published_at,
        Some(datetime!(0000-01-01 10:30 UTC))
    );
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

/// A page as written, and the draft it must parse into.
#[derive(Debug, Clone)]
struct WrittenPage {
    content: String,
    expected: ArticleDraft,
}

fn arb_page() -> impl Strategy<Value = WrittenPage> {
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
            WrittenPage {
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
