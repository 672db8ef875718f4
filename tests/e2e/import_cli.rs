//! `article-service import` and `migrate` end to end: the real binary on a
//! fresh database, its results read back with SQL and over gRPC.

use crate::common::*;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

// ---------------------------------------------------------------------------
// Helpers

/// A directory of its own under the system's temporary directory, removed on
/// drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("import-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` in the directory; returns its path as a string.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a temporary file");
        path.to_str().expect("a UTF-8 path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// NDJSON lines joined with `\n`, with a final line ending.
fn ndjson(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// One NDJSON record from a JSON value.
fn record(value: serde_json::Value) -> String {
    value.to_string()
}

/// `article-service import ARGS...` against `database`.
fn import(database: &str, args: &[&str]) -> Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    run_cli(database, &all)
}

/// `article-service ARGS...` with `input` on its standard input.
fn run_cli_with_stdin(database: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", database)
        .env("LOG_FORMAT", "text")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run article-service");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // The process may stop reading early (an error); that is its answer.
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().expect("wait for article-service");
    writer.join().expect("the stdin writer");
    output
}

/// Standard output and standard error, ANSI colour codes removed.
fn all_output(output: &Output) -> String {
    strip_ansi(&format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[track_caller]
fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit status {:?}; output:\n{}",
        output.status,
        all_output(output)
    );
}

/// The exit status is a failure (non-zero, not a signal); returns the output.
#[track_caller]
fn assert_failure(output: &Output) -> String {
    let text = all_output(output);
    assert!(
        matches!(output.status.code(), Some(code) if code != 0),
        "expected a non-zero exit status, got {:?}; output:\n{text}",
        output.status
    );
    text
}

/// An article row as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
struct Row {
    id: uuid::Uuid,
    slug: String,
    title: String,
    summary: String,
    body: String,
    byline: String,
    tag_slugs: Vec<String>,
    tag_names: Vec<String>,
    published_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    revision: i64,
    feed_position: i64,
}

/// Every stored article, in feed order.
async fn rows(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, slug, title, summary, body, byline, tag_slugs, tag_names, published_at, \
         updated_at, revision, feed_position FROM articles ORDER BY feed_position",
    )
    .fetch_all(pool)
    .await
    .expect("read the articles")
}

fn slugs(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|row| row.slug.clone()).collect()
}

fn row<'a>(rows: &'a [Row], slug: &str) -> &'a Row {
    rows.iter()
        .find(|row| row.slug == slug)
        .unwrap_or_else(|| panic!("{slug} is stored; stored: {:?}", slugs(rows)))
}

/// (slug, name, article_count) of the tags in use, by slug in byte order,
/// read from the tables: the count column and the open links (those of the
/// articles' current revisions) must agree.
async fn sql_tag_counts(pool: &PgPool) -> Vec<(String, String, i64)> {
    let counted: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT slug, name, article_count FROM tags WHERE article_count > 0 ORDER BY slug",
    )
    .fetch_all(pool)
    .await
    .expect("read the tags");
    let linked: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tag_slug, count(*) FROM article_tags WHERE visible_until IS NULL \
         GROUP BY tag_slug ORDER BY tag_slug",
    )
    .fetch_all(pool)
    .await
    .expect("read the tag links");
    let from_counts: Vec<(String, i64)> = counted
        .iter()
        .map(|(slug, _, count)| (slug.clone(), *count))
        .collect();
    assert_eq!(from_counts, linked, "tags.article_count and article_tags");
    counted
}

/// Expected tag counts, from (slug, name, count) triples.
fn tags_expected(tags: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    let mut tags: Vec<(String, String, i64)> = tags
        .iter()
        .map(|(slug, name, count)| ((*slug).to_owned(), (*name).to_owned(), *count))
        .collect();
    tags.sort();
    tags
}

fn at(rfc3339: &str) -> OffsetDateTime {
    OffsetDateTime::parse(rfc3339, &Rfc3339).expect("an RFC 3339 timestamp")
}

/// A new database without any table (`fresh_database` migrates its own).
async fn empty_database() -> String {
    let admin: PgConnectOptions = admin_url()
        .parse()
        .expect("DATABASE_URL is a PostgreSQL URL");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    database_url_named(&name)
}

/// The sample's body as the page-text format defines it: the lines between
/// the publication date line and the tags line, one paragraph each in this
/// capture, joined by a blank line.
fn sample_body() -> String {
    let sample = std::fs::read_to_string(SAMPLE).expect("read the sample");
    let lines: Vec<&str> = sample.lines().collect();
    let date = lines
        .iter()
        .position(|line| *line == "Tue, 31 Dec 2019 10:30 GMT")
        .expect("the sample's publication date line");
    let last = lines.len() - 1;
    assert_eq!(lines[last], "US & Canada Russia");
    lines[date + 1..last]
        .iter()
        .filter(|line| !line.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n")
}

// ---------------------------------------------------------------------------
// Page text

#[tokio::test]
async fn sample_page_is_stored_once_and_reimporting_it_changes_nothing() {
    let database = fresh_database().await;
    let output = import(&database, &[SAMPLE]);
    assert_success(&output);

    let pool = pool(&database).await;
    let stored = rows(&pool).await;
    assert_eq!(slugs(&stored), [SAMPLE_SLUG]);
    let first = stored[0].clone();
    assert_eq!(first.title, SAMPLE_TITLE);
    assert_eq!(first.byline, "7Dnews London");
    assert_eq!(first.summary, "");
    assert_eq!(first.published_at, at("2019-12-31T10:30:00Z"));
    assert_eq!(first.body, sample_body());
    assert_eq!(first.body.split("\n\n").count(), 6);
    assert!(
        first.body.contains("countries\u{2019} security"),
        "the typographic apostrophe stays"
    );
    assert_eq!(first.tag_slugs, ["us-canada", "russia"]);
    assert_eq!(first.tag_names, ["US & Canada", "Russia"]);
    assert_eq!(first.revision, 1);
    assert_eq!(first.feed_position, 1);
    assert_eq!(
        sql_tag_counts(&pool).await,
        tags_expected(&[("us-canada", "US & Canada", 1), ("russia", "Russia", 1)])
    );

    // Again: nothing changes, not even updated_at.
    let again = import(&database, &[SAMPLE]);
    assert_success(&again);
    assert_eq!(rows(&pool).await, std::slice::from_ref(&first));
    assert_eq!(
        sql_tag_counts(&pool).await,
        tags_expected(&[("us-canada", "US & Canada", 1), ("russia", "Russia", 1)])
    );
    pool.close().await;

    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;
    let article = get_by_slug(&mut client, SAMPLE_SLUG)
        .await
        .expect("GetArticle");
    assert_eq!(article.id, first.id.to_string());
    assert_eq!(article.title, SAMPLE_TITLE);
    assert_eq!(article.byline, "7Dnews London");
    assert_eq!(article.body, sample_body());
    assert_eq!(
        article.published_at,
        Some(timestamp("2019-12-31T10:30:00Z"))
    );
    assert_eq!(
        tag_pairs(&article),
        [
            ("us-canada".to_owned(), "US & Canada".to_owned()),
            ("russia".to_owned(), "Russia".to_owned())
        ]
    );
    assert_eq!(article.revision, 1);
    assert_eq!(
        tag_counts(&list_all_tags(&mut client, 0).await),
        [
            ("russia".to_owned(), "Russia".to_owned(), 1),
            ("us-canada".to_owned(), "US & Canada".to_owned(), 1)
        ]
    );
}

/// A page that breaks a rule is named at the line of the field that
/// breaks it: here the title (line 8 of the sample) and the byline (11).
#[tokio::test]
async fn a_page_is_refused_at_the_line_of_the_field_that_breaks_a_rule() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let sample = std::fs::read_to_string(SAMPLE).expect("read the sample");
    for (name, from, to, line) in [
        (
            "long-title.txt",
            "US and Russian Leaders Unite to Combat Terrorism",
            "T".repeat(501),
            8,
        ),
        ("long-byline.txt", "7Dnews London", "B".repeat(201), 11),
    ] {
        let page = dir.write(name, sample.replacen(from, &to, 1));
        let text = assert_failure(&import(&database, &[&page]));
        assert!(
            text.contains(&format!("{page}: line {line}: ")),
            "names the file and line {line}:\n{text}"
        );
    }
    let pool = pool(&database).await;
    assert!(rows(&pool).await.is_empty());
    pool.close().await;
}

#[tokio::test]
async fn a_page_dated_before_the_year_one_is_refused_on_its_date_line() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let sample = std::fs::read_to_string(SAMPLE).expect("read the sample");
    let date_line = 1 + sample
        .split('\n')
        .position(|line| line == "Tue, 31 Dec 2019 10:30 GMT")
        .expect("the sample's publication date line");
    let page = dir.write(
        "year-zero.txt",
        sample.replace("Tue, 31 Dec 2019 10:30 GMT", "Sat, 1 Jan 0000 10:30 GMT"),
    );
    let text = assert_failure(&import(&database, &[&page]));
    assert!(
        text.contains(&format!("{page}: line {date_line}: ")) && text.contains("out of range"),
        "names the file, the date line ({date_line}) and the reason:\n{text}"
    );
    let pool = pool(&database).await;
    assert!(rows(&pool).await.is_empty());
    pool.close().await;
}

/// The sample with its tags line replaced.
fn sample_with_tags_line(tags_line: &str) -> (String, usize) {
    let sample = std::fs::read_to_string(SAMPLE).expect("read the sample");
    let page = sample
        .strip_suffix("US & Canada Russia")
        .expect("the sample ends with its tags line");
    let text = format!("{page}{tags_line}");
    let line = text.split('\n').count();
    (text, line)
}

#[tokio::test]
async fn unsplittable_tags_line_is_refused_until_the_sections_are_added() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let (page, tags_line) = sample_with_tags_line("US & Canada Lost City Russia Atlantis");
    let page_path = dir.write("lost-city-page.txt", &page);
    let before = dir.write(
        "before.ndjson",
        ndjson(&[record(serde_json::json!({
            "title": "Before the page", "body": "Stored.", "tags": ["World"],
            "published_at": "2024-05-01T09:00:00Z"
        }))]),
    );
    let pool = pool(&database).await;

    // Without the sections: the file, its tags line and the words no section covers.
    let output = import(&database, &[&before, &page_path]);
    let text = assert_failure(&output);
    assert!(
        text.contains(&format!("{page_path}: line {tags_line}: ")),
        "names the file and the tags line ({tags_line}):\n{text}"
    );
    assert!(
        text.contains(r#"unmatched words: "Lost", "City", "Atlantis""#),
        "names the unmatched words:\n{text}"
    );
    assert_eq!(slugs(&rows(&pool).await), ["2024-05-01-before-the-page"]);

    // One section of two is not enough.
    let output = import(&database, &["--section", "Lost City", &page_path]);
    let text = assert_failure(&output);
    assert!(
        text.contains(&format!("{page_path}: line {tags_line}: ")),
        "{text}"
    );
    assert!(
        text.contains(r#"unmatched words: "Atlantis""#) && !text.contains(r#""Lost""#),
        "{text}"
    );
    assert_eq!(slugs(&rows(&pool).await), ["2024-05-01-before-the-page"]);

    // With both sections (extra white space in a name is ignored).
    let output = import(
        &database,
        &[
            "--section",
            " Lost   City ",
            "--section",
            "Atlantis",
            &page_path,
        ],
    );
    assert_success(&output);
    let stored = rows(&pool).await;
    assert_eq!(
        slugs(&stored),
        ["2024-05-01-before-the-page", SAMPLE_SLUG],
        "stored after the earlier file"
    );
    let article = row(&stored, SAMPLE_SLUG);
    assert_eq!(
        article.tag_slugs,
        ["us-canada", "lost-city", "russia", "atlantis"]
    );
    assert_eq!(
        article.tag_names,
        ["US & Canada", "Lost City", "Russia", "Atlantis"]
    );
    assert_eq!(article.body, sample_body());
    assert_eq!(article.revision, 1);
    assert_eq!(
        sql_tag_counts(&pool).await,
        tags_expected(&[
            ("atlantis", "Atlantis", 1),
            ("lost-city", "Lost City", 1),
            ("russia", "Russia", 1),
            ("us-canada", "US & Canada", 1),
            ("world", "World", 1),
        ])
    );
    pool.close().await;
}

// ---------------------------------------------------------------------------
// NDJSON

#[tokio::test]
async fn ndjson_articles_are_stored_by_publish_rules_and_reimport_changes_nothing() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let lines = [
        record(serde_json::json!({
            "title": "Alpha Summit Opens in Vienna",
            "summary": "Leaders meet.",
            "body": "First paragraph.\n\nSecond paragraph, with “quotes”.",
            "byline": "7Dnews Vienna",
            "tags": ["Europe", " Économie ", "europe"],
            "published_at": "2024-03-01T23:30:00-05:00"
        })),
        String::new(),
        record(serde_json::json!({
            "slug": "beta-explicit-slug",
            "title": "Beta: Markets Rally",
            "body": "Stocks rose.",
            "tags": ["Business"],
            "published_at": "2024-03-02T10:00:00.123456Z"
        })),
        " \t ".to_owned(),
        // Fields in another order, nulls for empty.
        r#"{"published_at": "2024-03-03T00:15:00+01:00", "tags": null, "byline": null, "body": "Texte.", "title": "Économie : les marchés rebondissent"}"#.to_owned(),
        // CRLF line ending on this one; no published_at: the time of the import.
        format!("{}\r", record(serde_json::json!({"title": "Undated Brief", "body": "Now."}))),
    ];
    let path = dir.write("articles.ndjson", ndjson(&lines));

    let before = OffsetDateTime::now_utc();
    let output = import(&database, &[&path]);
    let after = OffsetDateTime::now_utc();
    assert_success(&output);
    assert!(
        all_output(&output).contains("created=4 updated=0 unchanged=0"),
        "{}",
        all_output(&output)
    );

    let pool = pool(&database).await;
    let stored = rows(&pool).await;
    let undated = row(&stored, &format!("{}-undated-brief", before.date()))
        .slug
        .clone();
    let alpha_slug = "2024-03-02-alpha-summit-opens-in-vienna";
    let economie_slug = "2024-03-02-économie-les-marchés-rebondissent";
    assert_eq!(
        slugs(&stored),
        [
            alpha_slug,
            "beta-explicit-slug",
            economie_slug,
            undated.as_str()
        ],
        "one article per record, in file order"
    );

    let alpha = row(&stored, alpha_slug);
    assert_eq!(alpha.title, "Alpha Summit Opens in Vienna");
    assert_eq!(alpha.summary, "Leaders meet.");
    assert_eq!(
        alpha.body,
        "First paragraph.\n\nSecond paragraph, with “quotes”."
    );
    assert_eq!(alpha.byline, "7Dnews Vienna");
    assert_eq!(alpha.tag_slugs, ["europe", "économie"]);
    assert_eq!(alpha.tag_names, ["Europe", "Économie"]);
    assert_eq!(alpha.published_at, at("2024-03-02T04:30:00Z"));
    assert_eq!(alpha.revision, 1);

    let beta = row(&stored, "beta-explicit-slug");
    assert_eq!(beta.title, "Beta: Markets Rally");
    assert_eq!(beta.summary, "");
    assert_eq!(beta.byline, "");
    assert_eq!(beta.tag_slugs, ["business"]);
    assert_eq!(beta.published_at, at("2024-03-02T10:00:00.123456Z"));
    assert_eq!(beta.revision, 1);

    let economie = row(&stored, economie_slug);
    assert_eq!(economie.title, "Économie : les marchés rebondissent");
    assert_eq!(economie.body, "Texte.");
    assert!(economie.tag_slugs.is_empty() && economie.tag_names.is_empty());
    assert_eq!(economie.published_at, at("2024-03-02T23:15:00Z"));

    let undated = row(&stored, &undated);
    assert_eq!(undated.title, "Undated Brief");
    assert!(
        before - Duration::from_millis(1) <= undated.published_at && undated.published_at <= after,
        "published_at {} is the time of the import",
        undated.published_at
    );
    assert_eq!(undated.updated_at, undated.published_at);

    for article in &stored {
        assert!(article.updated_at >= before - Duration::from_millis(1));
        assert!(article.updated_at <= after);
    }
    let tags = tags_expected(&[
        ("business", "Business", 1),
        ("europe", "Europe", 1),
        ("économie", "Économie", 1),
    ]);
    assert_eq!(sql_tag_counts(&pool).await, tags);

    // The same file again: nothing is written.
    let output = import(&database, &[&path]);
    assert_success(&output);
    assert!(
        all_output(&output).contains("created=0 updated=0 unchanged=4"),
        "{}",
        all_output(&output)
    );
    assert_eq!(rows(&pool).await, stored);
    assert_eq!(sql_tag_counts(&pool).await, tags);
    pool.close().await;

    // Over gRPC, as PublishArticle would have stored them.
    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;
    let article = get_by_slug(&mut client, alpha_slug).await.expect("alpha");
    assert_eq!(article.id, alpha.id.to_string());
    assert_eq!(article.title, "Alpha Summit Opens in Vienna");
    assert_eq!(article.summary, "Leaders meet.");
    assert_eq!(article.byline, "7Dnews Vienna");
    assert_eq!(
        tag_pairs(&article),
        [
            ("europe".to_owned(), "Europe".to_owned()),
            ("économie".to_owned(), "Économie".to_owned())
        ]
    );
    assert_eq!(
        article.published_at,
        Some(timestamp("2024-03-02T04:30:00Z"))
    );
    assert_eq!(article.revision, 1);
    let article = get_by_slug(&mut client, "beta-explicit-slug")
        .await
        .expect("beta");
    assert_eq!(
        article.published_at,
        Some(timestamp("2024-03-02T10:00:00.123456Z"))
    );
    let article = get_by_slug(&mut client, economie_slug)
        .await
        .expect("économie");
    assert_eq!(
        article.published_at,
        Some(timestamp("2024-03-02T23:15:00Z"))
    );
    assert!(article.tags.is_empty());
    assert_eq!(tag_counts(&list_all_tags(&mut client, 2).await), tags);
}

#[tokio::test]
async fn a_later_record_with_the_same_slug_updates_the_earlier_one() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let mut lines = vec![
        record(serde_json::json!({
            "slug": "evolving-story", "title": "Evolving Story", "body": "First version.",
            "byline": "Desk", "tags": ["World"], "published_at": "2024-04-01T08:00:00Z"
        })),
        record(serde_json::json!({
            "title": "Derived Duplicate", "body": "One.", "tags": ["Asia"],
            "published_at": "2024-04-01T09:00:00Z"
        })),
        // Same slug in the same batch: an update (published_at omitted: kept).
        record(serde_json::json!({
            "slug": "evolving-story", "title": "Evolving Story (updated)",
            "body": "Second version.", "byline": "Desk", "tags": ["World", "Asia"]
        })),
        // Same derived slug (title and UTC date): an update too.
        record(serde_json::json!({
            "title": "Derived Duplicate", "body": "Two.", "tags": ["Asia"],
            "published_at": "2024-04-01T11:00:00+02:00"
        })),
    ];
    // Hundreds of other articles, so that the last update comes in a later
    // write batch than the article it updates.
    for i in 0..600 {
        lines.push(record(serde_json::json!({
            "title": format!("Filler {i}"), "body": "Filler.",
            "published_at": "2024-04-02T00:00:00Z"
        })));
    }
    lines.push(record(serde_json::json!({
        "slug": "evolving-story", "title": "Evolving Story (final)",
        "body": "Third version.", "byline": "", "tags": ["Russia"],
        "published_at": "2024-04-01T08:30:00Z"
    })));
    let path = dir.write("updates.jsonl", ndjson(&lines));

    let output = import(&database, &[&path]);
    assert_success(&output);
    assert!(
        all_output(&output).contains("created=602 updated=3 unchanged=0"),
        "{}",
        all_output(&output)
    );

    let pool = pool(&database).await;
    let stored = rows(&pool).await;
    assert_eq!(stored.len(), 602);
    let evolving = row(&stored, "evolving-story");
    assert_eq!(evolving.title, "Evolving Story (final)");
    assert_eq!(evolving.body, "Third version.");
    assert_eq!(evolving.byline, "");
    assert_eq!(evolving.tag_slugs, ["russia"]);
    assert_eq!(evolving.published_at, at("2024-04-01T08:30:00Z"));
    assert_eq!(evolving.revision, 3);
    assert_eq!(evolving.feed_position, 1, "an update keeps its place");

    let derived = row(&stored, "2024-04-01-derived-duplicate");
    assert_eq!(derived.body, "Two.");
    assert_eq!(derived.published_at, at("2024-04-01T09:00:00Z"));
    assert_eq!(derived.revision, 2);
    assert_eq!(derived.feed_position, 2);

    let fillers: Vec<&Row> = stored
        .iter()
        .filter(|r| r.title != evolving.title)
        .collect();
    assert!(
        fillers
            .iter()
            .filter(|r| r.slug != derived.slug)
            .all(|r| r.revision == 1)
    );
    assert_eq!(
        sql_tag_counts(&pool).await,
        tags_expected(&[("asia", "Asia", 1), ("russia", "Russia", 1)]),
        "the final tags only; World was dropped by the last update"
    );

    // The same file again: the articles it names once are not touched; the
    // two it updates end as they were (the file replays their earlier
    // versions line by line, so their revision is not asserted here).
    assert_success(&import(&database, &[&path]));
    let again = rows(&pool).await;
    assert_eq!(again.len(), stored.len());
    for (before, after) in stored.iter().zip(&again) {
        if before.slug == evolving.slug || before.slug == derived.slug {
            let content = |r: &Row| {
                let mut r = r.clone();
                r.revision = 0;
                r.updated_at = OffsetDateTime::UNIX_EPOCH;
                r
            };
            assert_eq!(content(after), content(before));
        } else {
            assert_eq!(after, before);
        }
    }
    assert_eq!(
        sql_tag_counts(&pool).await,
        tags_expected(&[("asia", "Asia", 1), ("russia", "Russia", 1)])
    );
    pool.close().await;
}

#[tokio::test]
async fn format_comes_from_the_extension_stdin_or_the_format_flag() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let one = |title: &str| {
        ndjson(&[record(serde_json::json!({
            "title": title, "body": "Body.", "tags": ["World"],
            "published_at": "2024-06-01T12:00:00Z"
        }))])
    };
    let a = dir.write("a.ndjson", one("From NDJSON"));
    let b = dir.write("b.jsonl", one("From JSONL"));
    let c = dir.write("c.json", one("From JSON"));
    let d = dir.write("D.JSONL", one("From Upper Case"));
    let pool = pool(&database).await;

    // Standard input ("-") among files, in command-line order.
    let output = run_cli_with_stdin(
        &database,
        &["import", &a, &b, "-", &c, &d],
        one("From Stdin").as_bytes(),
    );
    assert_success(&output);
    assert_eq!(
        slugs(&rows(&pool).await),
        [
            "2024-06-01-from-ndjson",
            "2024-06-01-from-jsonl",
            "2024-06-01-from-stdin",
            "2024-06-01-from-json",
            "2024-06-01-from-upper-case",
        ]
    );

    // NDJSON in a .txt file is page text by default...
    let txt = dir.write("records.txt", one("From Text Extension"));
    let text = assert_failure(&import(&database, &[&txt]));
    assert!(text.contains(&txt), "{text}");
    assert_eq!(rows(&pool).await.len(), 5);
    // ...and NDJSON with --format ndjson.
    assert_success(&import(&database, &["--format", "ndjson", &txt]));
    // A page in a .json file is NDJSON by default, page text with --format text.
    let page_json = dir.write("page.json", std::fs::read(SAMPLE).expect("the sample"));
    let text = assert_failure(&import(&database, &[&page_json]));
    assert!(text.contains(&format!("{page_json}: line 1: ")), "{text}");
    assert_success(&import(&database, &["--format", "text", &page_json]));
    // Standard input as page text.
    let sample = std::fs::read(SAMPLE).expect("the sample");
    let output = run_cli_with_stdin(&database, &["import", "--format", "text", "-"], &sample);
    assert_success(&output);

    let stored = rows(&pool).await;
    assert_eq!(
        slugs(&stored)[5..],
        ["2024-06-01-from-text-extension", SAMPLE_SLUG]
    );
    assert_eq!(row(&stored, SAMPLE_SLUG).revision, 1);
    assert_eq!(row(&stored, SAMPLE_SLUG).body, sample_body());
    pool.close().await;
}

// ---------------------------------------------------------------------------
// All or nothing

#[tokio::test]
async fn a_bad_line_stores_nothing_from_its_file_and_stops_the_import() {
    let good = |title: &str, tags: &[&str]| {
        record(serde_json::json!({
            "title": title, "body": "Body.", "tags": tags,
            "published_at": "2024-07-01T12:00:00Z"
        }))
    };
    let many_tags: Vec<String> = (1..=21).map(|i| format!("Tag {i}")).collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "invalid JSON",
            r#"{"title": "Broken", "body": "#.to_owned(),
            "EOF while parsing",
        ),
        (
            "unknown field",
            r#"{"tittle": "Typo", "body": "Body."}"#.to_owned(),
            "unknown field `tittle`",
        ),
        (
            "wrong type",
            r#"{"title": "Typed", "body": "Body.", "tags": "World"}"#.to_owned(),
            "invalid type: string",
        ),
        (
            "empty title",
            r#"{"title": "  ", "body": "Body."}"#.to_owned(),
            "title: title is required",
        ),
        (
            "21 tags",
            record(serde_json::json!({"title": "Tagged", "body": "Body.", "tags": many_tags})),
            "tags: an article has at most 20 tags",
        ),
        (
            "bad slug",
            r#"{"slug": "Not A Slug", "title": "Slugged", "body": "Body."}"#.to_owned(),
            "slug: slug must be",
        ),
        (
            "bad published_at",
            r#"{"title": "Dated", "body": "Body.", "published_at": "2024-07-01 12:00"}"#.to_owned(),
            "is not an RFC 3339 timestamp",
        ),
        (
            "published_at before the year 1 in UTC",
            r#"{"title": "Ancient", "body": "Body.", "published_at": "0001-01-01T00:30:00+01:00"}"#
                .to_owned(),
            "is out of range",
        ),
    ];
    for (case, bad_line, reason) in cases {
        let database = fresh_database().await;
        let dir = TempDir::new();
        let first = dir.write("first.ndjson", ndjson(&[good("First File", &["Europe"])]));
        let bad = dir.write(
            "bad.ndjson",
            ndjson(&[
                good("Doomed One", &["Doomed"]),
                good("Doomed Two", &["Europe"]),
                bad_line,
                good("Doomed Four", &["Doomed"]),
            ]),
        );
        let last = dir.write("last.ndjson", ndjson(&[good("Last File", &["Asia"])]));

        let output = import(&database, &[&first, &bad, &last]);
        let text = assert_failure(&output);
        assert!(
            text.contains(&format!("{bad}: line 3: ")),
            "{case}: names the file and line 3:\n{text}"
        );
        assert!(text.contains(reason), "{case}: says {reason:?}:\n{text}");
        assert!(
            !text.contains("last.ndjson"),
            "{case}: the file after is not read:\n{text}"
        );

        let pool = pool(&database).await;
        assert_eq!(
            slugs(&rows(&pool).await),
            ["2024-07-01-first-file"],
            "{case}: only the file before the bad one is stored"
        );
        assert_eq!(
            sql_tag_counts(&pool).await,
            tags_expected(&[("europe", "Europe", 1)]),
            "{case}"
        );
        let doomed_tags: i64 =
            sqlx::query_scalar("SELECT count(*) FROM tags WHERE slug = 'doomed'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(doomed_tags, 0, "{case}: no tag of the bad file is created");
        pool.close().await;
    }
}

#[tokio::test]
async fn line_numbers_count_blank_lines_and_span_write_batches() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let pool = pool(&database).await;

    // Blank lines count: the bad record is on line 3.
    let path = dir.write(
        "blank-first.ndjson",
        "\n   \n{\"title\": \"\", \"body\": \"Body.\"}\n",
    );
    let text = assert_failure(&import(&database, &[&path]));
    assert!(
        text.contains(&format!("{path}: line 3: title: title is required")),
        "{text}"
    );

    // A bad line after more than one write batch: nothing of the file stays.
    let mut lines: Vec<String> = (0..1_200)
        .map(|i| {
            record(serde_json::json!({
                "title": format!("Batch Article {i}"), "body": "Body.", "tags": ["World"],
                "published_at": "2024-08-01T00:00:00Z"
            }))
        })
        .collect();
    lines.push(r#"{"title": "Bad", "body": "Body.", "byline": 7}"#.to_owned());
    let path = dir.write("long.ndjson", ndjson(&lines));
    let text = assert_failure(&import(&database, &[&path]));
    assert!(
        text.contains(&format!("{path}: line 1201: ")) && text.contains("invalid type: integer"),
        "{text}"
    );
    assert!(rows(&pool).await.is_empty());
    assert!(sql_tag_counts(&pool).await.is_empty());
    let tags: i64 = sqlx::query_scalar("SELECT count(*) FROM tags")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tags, 0);
    pool.close().await;
}

#[tokio::test]
async fn a_missing_file_is_named_and_stops_the_import() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-file.ndjson");
    let missing = missing.to_str().unwrap();
    let after = dir.write(
        "after.ndjson",
        ndjson(&[record(
            serde_json::json!({"title": "After", "body": "Body."}),
        )]),
    );

    let output = import(&database, &[SAMPLE, missing, &after]);
    let text = assert_failure(&output);
    assert!(text.contains(&format!("{missing}: ")), "{text}");
    assert!(text.contains("cannot open"), "{text}");
    let pool = pool(&database).await;
    assert_eq!(slugs(&rows(&pool).await), [SAMPLE_SLUG]);
    pool.close().await;

    // A missing page-text file, alone.
    let missing_txt = dir.path().join("missing-page.txt");
    let missing_txt = missing_txt.to_str().unwrap();
    let text = assert_failure(&import(&database, &[missing_txt]));
    assert!(text.contains(&format!("{missing_txt}: ")), "{text}");
}

// ---------------------------------------------------------------------------
// migrate, and the database URL

#[tokio::test]
async fn migrate_works_from_any_directory_and_twice() {
    let database = empty_database().await;
    let elsewhere = TempDir::new();
    let migrate = || {
        Command::new(BIN)
            .arg("migrate")
            .current_dir(elsewhere.path())
            .env("DATABASE_URL", &database)
            .env("LOG_FORMAT", "text")
            .output()
            .expect("run article-service migrate")
    };

    assert_success(&migrate());
    let pool = pool(&database).await;
    let applied = || async {
        sqlx::query_as::<_, (i64, bool, OffsetDateTime)>(
            "SELECT version, success, installed_on FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(&pool)
        .await
        .expect("read _sqlx_migrations")
    };
    let first = applied().await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count();
    assert_eq!(first.len(), files, "every migration is applied");
    assert!(first.iter().all(|(_, success, _)| *success));
    for table in ["articles", "tags", "article_tags", "token_keys"] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(exists, "table {table}");
    }

    assert_success(&migrate());
    assert_eq!(applied().await, first, "a second migrate changes nothing");

    // The migrated schema takes an import, with a path relative to the
    // working directory.
    std::fs::copy(SAMPLE, elsewhere.path().join("sample.txt")).unwrap();
    let output = Command::new(BIN)
        .args(["import", "sample.txt"])
        .current_dir(elsewhere.path())
        .env("DATABASE_URL", &database)
        .env("LOG_FORMAT", "text")
        .output()
        .unwrap();
    assert_success(&output);
    assert_eq!(slugs(&rows(&pool).await), [SAMPLE_SLUG]);
    pool.close().await;
}

/// Two `migrate` at once take turns on sqlx's migration lock. One that waits
/// for a lock past its 5 s lock timeout (another `migrate`, or a long
/// transaction on a table a migration alters) stops, changing nothing, and
/// says why; run again, it succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_migrate_kept_waiting_for_a_lock_stops_and_says_why() {
    let database = fresh_database().await;
    let name = url::Url::parse(&database).expect("a URL").path()[1..].to_owned();
    // What sqlx takes (sqlx-postgres, `generate_lock_id`).
    let lock_id = 0x3d32_ad9e_i64 * i64::from(crc32fast::hash(name.as_bytes()));
    let pool = pool(&database).await;
    let mut holder = pool.acquire().await.expect("a connection");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(lock_id)
        .execute(&mut *holder)
        .await
        .expect("the migration lock");

    let waiting = {
        let database = database.clone();
        tokio::task::spawn_blocking(move || run_cli(&database, &["migrate"]))
    };
    let output = waiting.await.expect("migrate ran");
    assert!(!output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("a lock was not granted within 5 s: another `migrate` is running"),
        "{said}"
    );

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_id)
        .execute(&mut *holder)
        .await
        .expect("unlock");
    assert_success(&run_cli(&database, &["migrate"]));
    drop(holder);
    pool.close().await;
}

#[tokio::test]
async fn a_bad_database_url_fails_without_showing_its_password() {
    const PASSWORD: &str = "SuperSecret123";
    let urls = [
        // Nothing listens there.
        (
            format!("postgres://user:{PASSWORD}@127.0.0.1:1/db"),
            "the database cannot be reached",
        ),
        // Not a valid URL (the port).
        (
            format!("postgres://user:{PASSWORD}@127.0.0.1:notaport/db"),
            "DATABASE_URL is not a valid PostgreSQL URL",
        ),
    ];
    let mut children = Vec::new();
    for (url, reason) in &urls {
        for args in [vec!["migrate"], vec!["import", SAMPLE]] {
            for log_format in ["text", "json"] {
                let child = Command::new(BIN)
                    .args(&args)
                    .env("DATABASE_URL", url)
                    .env("LOG_FORMAT", log_format)
                    .env("RUST_LOG", "trace")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run article-service");
                children.push((format!("{args:?} {log_format} {url}"), *reason, child));
            }
        }
    }
    for (what, reason, child) in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .expect("wait for article-service");
        let text = assert_failure(&output);
        assert!(
            !text.contains(PASSWORD),
            "{what}: the password is shown:\n{text}"
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("article-service: "),
            "{what}: says so on standard error:\n{text}"
        );
        assert!(text.contains(reason), "{what}: says {reason:?}:\n{text}");
    }
}

// ---------------------------------------------------------------------------
// A large file

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_is_stored_in_file_order_with_its_tag_counts() {
    const COUNT: usize = 3_000;
    const SECTIONS: [(&str, &str); 7] = [
        ("World", "world"),
        ("Économie", "économie"),
        ("US & Canada", "us-canada"),
        ("Russia", "russia"),
        ("Asia", "asia"),
        ("Science", "science"),
        ("Sport", "sport"),
    ];
    let database = fresh_database().await;
    let dir = TempDir::new();
    let mut lines = Vec::with_capacity(COUNT);
    let mut expected_slugs = Vec::with_capacity(COUNT);
    let mut expected_tags: BTreeMap<String, (String, i64)> = BTreeMap::new();
    let base = at("2024-09-01T00:00:00Z");
    for i in 0..COUNT {
        let (section, section_slug) = SECTIONS[i % SECTIONS.len()];
        let batch = format!("Batch {}", i / 1_000);
        let mut tags = vec![
            (section.to_owned(), section_slug.to_owned()),
            (batch.clone(), format!("batch-{}", i / 1_000)),
        ];
        if i % 3 == 0 {
            tags.push(("Every Third".to_owned(), "every-third".to_owned()));
        }
        for (name, slug) in &tags {
            expected_tags
                .entry(slug.clone())
                .or_insert((name.clone(), 0))
                .1 += 1;
        }
        // Seconds apart, all on one day; titles in reverse so that neither
        // the slug nor the date orders the file.
        let published_at = base + Duration::from_secs(i as u64);
        let title = format!("Bulk Article {}", COUNT - i);
        expected_slugs.push(format!("2024-09-01-bulk-article-{}", COUNT - i));
        lines.push(record(serde_json::json!({
            "title": title,
            "body": format!("Paragraph one of {i}.\n\nParagraph two."),
            "byline": "Bulk Desk",
            "tags": tags.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
            "published_at": published_at.format(&Rfc3339).unwrap(),
        })));
    }
    let path = dir.write("bulk.ndjson", ndjson(&lines));

    // The first write waits for a lock the test holds on the articles table,
    // so the import runs past its progress interval (2 s) and reports.
    let pool = pool(&database).await;
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE articles IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock the articles table");
    let mut child = Command::new(BIN)
        .args(["import", &path])
        .env("DATABASE_URL", &database)
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run article-service");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        child.try_wait().expect("the import's status").is_none(),
        "the import waits for the lock"
    );
    blocker.commit().await.expect("release the lock");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("wait for article-service");
    assert_success(&output);
    let text = all_output(&output);
    assert!(
        text.contains(&format!("created={COUNT} updated=0 unchanged=0")),
        "{text}"
    );
    let progress: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(" importing "))
        .collect();
    assert!(
        progress
            .first()
            .is_some_and(|line| line.contains(&format!("file={path} line=500 articles=500 "))),
        "a progress line after the first write batch:\n{text}"
    );

    let stored = rows(&pool).await;
    assert_eq!(slugs(&stored), expected_slugs, "feed order is file order");
    let positions: Vec<i64> = stored.iter().map(|row| row.feed_position).collect();
    let contiguous: Vec<i64> = (1..=COUNT as i64).collect();
    assert_eq!(positions, contiguous);
    assert!(stored.iter().all(|row| row.revision == 1));
    let expected: Vec<(String, String, i64)> = expected_tags
        .into_iter()
        .map(|(slug, (name, count))| (slug, name, count))
        .collect();
    assert_eq!(expected.len(), 11);
    assert_eq!(sql_tag_counts(&pool).await, expected);

    let server = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut client = server.client().await;
    assert_eq!(tag_counts(&list_all_tags(&mut client, 4).await), expected);
    let (by_tag, _) = list_all_by_tag(&mut client, "Every Third", 100).await;
    assert_eq!(by_tag.len(), COUNT / 3);

    // Again: all unchanged, nothing written.
    let output = import(&database, &[&path]);
    assert_success(&output);
    let text = all_output(&output);
    assert!(
        text.contains(&format!("created=0 updated=0 unchanged={COUNT}")),
        "{text}"
    );
    assert_eq!(rows(&pool).await, stored);
    assert_eq!(tag_counts(&list_all_tags(&mut client, 100).await), expected);
    pool.close().await;
}

// ---------------------------------------------------------------------------
// The live feed

#[tokio::test(flavor = "multi_thread")]
async fn imported_articles_go_out_on_the_feed_in_file_order() {
    let server = TestServer::start().await;
    let database = server.database_url.clone();
    let mut client = server.client().await;
    let mut reader = FeedReader::open(&mut client, &[], "").await;

    let dir = TempDir::new();
    let article = |title: &str, body: &str| {
        record(serde_json::json!({
            "title": title, "body": body, "tags": ["World"],
            "published_at": "2024-10-01T12:00:00Z"
        }))
    };
    let path = dir.write(
        "feed.ndjson",
        ndjson(&[
            article("Feed Zulu", "One."),
            article("Feed Alpha", "Two."),
            article("Feed Mike", "Three."),
        ]),
    );
    let run = |database: String, path: String| async move {
        tokio::task::spawn_blocking(move || import(&database, &[&path]))
            .await
            .unwrap()
    };
    assert_success(&run(database.clone(), path.clone()).await);

    reader.read_articles(3, WAIT).await.expect("three articles");
    let titles: Vec<&str> = reader.articles.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(titles, ["Feed Zulu", "Feed Alpha", "Feed Mike"]);
    assert_eq!(reader.ids(), store_order(&database).await);
    for received in &reader.articles {
        let stored = get_by_id(&mut client, &received.id).await.unwrap();
        assert_eq!(received, &stored);
    }
    match read_one(&mut reader.stream, Duration::from_secs(1)).await {
        Read::TimedOut => {}
        Read::Message(message) => assert!(
            message.article.is_none(),
            "nothing but heartbeats follows: {message:?}"
        ),
        Read::Ended(status) => panic!("the stream ended: {status:?}"),
    }

    // Importing again, with one article changed: an update is not new.
    let path2 = dir.write(
        "feed-again.ndjson",
        ndjson(&[
            article("Feed Zulu", "One."),
            article("Feed Alpha", "Two, revised."),
            article("Feed Mike", "Three."),
            article("Feed Newest", "Four."),
        ]),
    );
    assert_success(&run(database.clone(), path2).await);
    reader
        .read_articles(4, WAIT)
        .await
        .expect("a fourth article");
    assert_eq!(reader.articles[3].title, "Feed Newest");
    assert_eq!(reader.ids(), store_order(&database).await);
    match read_one(&mut reader.stream, Duration::from_secs(1)).await {
        Read::TimedOut => {}
        Read::Message(message) => assert!(
            message.article.is_none(),
            "nothing but heartbeats follows: {message:?}"
        ),
        Read::Ended(status) => panic!("the stream ended: {status:?}"),
    }
    let alpha = get_by_slug(&mut client, "2024-10-01-feed-alpha")
        .await
        .unwrap();
    assert_eq!(alpha.revision, 2);
    assert_eq!(alpha.body, "Two, revised.");
}

/// A line that the stored article's state refuses (moving a public
/// article's `published_at` into the future) is named like any bad line:
/// file, line and reason; nothing of its file is stored.
#[tokio::test]
async fn a_refused_line_is_named_by_its_line() {
    let database = fresh_database().await;
    let dir = TempDir::new();
    let story = |published_at: &str| {
        record(serde_json::json!({
            "slug": "b-story",
            "title": "B story",
            "body": "Text.",
            "published_at": published_at
        }))
    };
    let first = dir.write("first.ndjson", ndjson(&[story("2024-03-01T10:00:00Z")]));
    assert!(import(&database, &[&first]).status.success());
    let lines = [
        record(serde_json::json!({"slug": "a-story", "title": "A story", "body": "Text."})),
        String::new(),
        story("2999-01-01T00:00:00Z"),
    ];
    let second = dir.write("second.ndjson", ndjson(&lines));
    let output = import(&database, &[&second]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{second}: line 3: article b-story is public: withdraw it before moving its published_at into the future"
        )),
        "{stderr}"
    );
    let slugs: Vec<String> = sqlx::query_scalar("SELECT slug FROM articles ORDER BY slug")
        .fetch_all(&pool(&database).await)
        .await
        .expect("the articles");
    assert_eq!(slugs, ["b-story"]);
}
