//! The import runner: reads each file, validates every article by
//! PublishArticle's rules, and stores a file in one transaction.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use time::OffsetDateTime;

use super::ndjson::read_ndjson;
use super::text::parse_page;
use super::{Format, SectionVocabulary, decode_utf8};
use crate::config::{ImportConfig, ImportFormat};
use crate::domain::article::{self, ArticleDraft, ValidArticle};
use crate::error::Error;
use crate::store::{BatchFailed, ImportTransaction, PoolSettings, Store, Upserted};

/// Articles per write: enough to amortise each statement's round trip,
/// small enough to keep a batch's parameters a couple of megabytes.
const BATCH_SIZE: usize = 500;
/// How often a long NDJSON import reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What one file did to the database.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FileSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl FileSummary {
    fn count(&mut self, stored: &[Upserted]) {
        for upserted in stored {
            match (upserted.created, upserted.changed) {
                (true, _) => self.created += 1,
                (false, true) => self.updated += 1,
                (false, false) => self.unchanged += 1,
            }
        }
    }

    fn total(&self) -> u64 {
        self.created + self.updated + self.unchanged
    }
}

/// Why a file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("{0}")]
    File(String),
    #[error("database: {0}")]
    Database(#[from] Error),
}

impl FileError {
    /// A batch that was not stored: at the line of the article refused,
    /// when one was (`line_of` maps its index in the batch to its line).
    fn at(failed: BatchFailed, line_of: impl Fn(usize) -> Option<usize>) -> Self {
        match failed.refused.and_then(line_of) {
            Some(line) => Self::Line {
                line,
                reason: failed.error.to_string(),
            },
            None => Self::Database(failed.error),
        }
    }
}

/// `article-service import`: files in order; the first bad file stops the
/// import (files before it stay stored) and makes the exit status non-zero.
pub async fn run(config: ImportConfig) -> anyhow::Result<()> {
    let options = config.database.connect_options()?;
    let store = Store::connect_lazy(
        options,
        &PoolSettings {
            max_connections: 1,
            acquire_timeout: Duration::from_secs(10),
            ..PoolSettings::default()
        },
    );
    let mut vocabulary = SectionVocabulary::default();
    vocabulary.extend(config.sections.iter().map(String::as_str));

    for path in &config.files {
        let name = display_name(path);
        let format = match config.format {
            Some(ImportFormat::Ndjson) => Format::Ndjson,
            Some(ImportFormat::Text) => Format::Text,
            None => Format::for_path(&path.to_string_lossy()),
        };
        let started = Instant::now();
        let summary = import_file(&store, path, format, &vocabulary)
            .await
            .with_context(|| format!("{name}: not imported"))
            .map_err(|error| anyhow::anyhow!("{name}: {:#}", error.root_cause()))?;
        tracing::info!(
            file = %name,
            created = summary.created,
            updated = summary.updated,
            unchanged = summary.unchanged,
            seconds = started.elapsed().as_secs_f64(),
            "imported"
        );
    }
    Ok(())
}

/// Imports one file, all or nothing.
pub async fn import_file(
    store: &Store,
    path: &Path,
    format: Format,
    vocabulary: &SectionVocabulary,
) -> Result<FileSummary, FileError> {
    let reader = open(path)?;
    let now = article::to_storage_precision(OffsetDateTime::now_utc());
    let mut tx = store.begin_import().await?;
    let summary = match format {
        Format::Text => import_text(&mut tx, reader, vocabulary, now).await?,
        Format::Ndjson => import_ndjson(&mut tx, reader, &display_name(path), now).await?,
    };
    tx.commit().await?;
    Ok(summary)
}

async fn import_text(
    tx: &mut ImportTransaction,
    mut reader: Box<dyn BufRead + Send>,
    vocabulary: &SectionVocabulary,
    now: OffsetDateTime,
) -> Result<FileSummary, FileError> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|error| FileError::File(format!("cannot read: {error}")))?;
    let content = decode_utf8(&bytes).map_err(|error| FileError::Line {
        line: error.line,
        reason: error.reason,
    })?;
    let page = parse_page(content, vocabulary).map_err(|error| FileError::Line {
        line: error.line,
        reason: error.reason,
    })?;
    // Named at the line of the first field that breaks a rule.
    let lines = page.lines;
    let valid = article::validate(page.draft, now).map_err(|violations| FileError::Line {
        line: violations
            .first()
            .map_or(1, |first| lines.line_of(first.field)),
        reason: article::describe_violations(&violations),
    })?;
    // A refusal is about the publication date.
    let stored = tx
        .upsert(vec![valid])
        .await
        .map_err(|failed| FileError::at(failed, |_| Some(lines.line_of("published_at"))))?;
    let mut summary = FileSummary::default();
    summary.count(&stored);
    Ok(summary)
}

async fn import_ndjson(
    tx: &mut ImportTransaction,
    reader: Box<dyn BufRead + Send>,
    name: &str,
    now: OffsetDateTime,
) -> Result<FileSummary, FileError> {
    // Reading, parsing and validating run on a thread of their own, up to
    // two batches ahead of the database writes, so that the two overlap.
    let (sender, mut batches) = tokio::sync::mpsc::channel(2);
    let reading = tokio::task::spawn_blocking(move || read_batches(reader, now, &sender));
    let mut summary = FileSummary::default();
    let started = Instant::now();
    let mut last_report = started;
    while let Some(batch) = batches.recv().await {
        // On an error, returning drops `batches`, which stops the reader.
        let Batch { articles, lines } = batch?;
        let last_line = lines.last().copied().unwrap_or_default();
        let stored = tx
            .upsert(articles)
            .await
            .map_err(|failed| FileError::at(failed, |index| lines.get(index).copied()))?;
        summary.count(&stored);
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let rate = summary.total() as f64 / started.elapsed().as_secs_f64();
            tracing::info!(file = %name, line = last_line, articles = summary.total(), per_second = rate.round(), "importing");
        }
    }
    // The channel also closes when the reader dies: only its normal end may
    // lead to a commit.
    reading
        .await
        .map_err(|error| FileError::File(format!("reading stopped: {error}")))?;
    Ok(summary)
}

/// Up to `BATCH_SIZE` valid articles, in file order, with the line of each.
struct Batch {
    articles: Vec<ValidArticle>,
    lines: Vec<usize>,
}

/// Sends the file's articles in batches, or the first bad line's error,
/// then stops; also stops when nobody listens any more.
fn read_batches(
    reader: Box<dyn BufRead + Send>,
    now: OffsetDateTime,
    sender: &tokio::sync::mpsc::Sender<Result<Batch, FileError>>,
) {
    let mut articles = Vec::with_capacity(BATCH_SIZE);
    let mut lines = Vec::with_capacity(BATCH_SIZE);
    for (line, record) in read_ndjson(reader) {
        let valid = match record {
            Ok(Some(draft)) => validate(draft, now, line),
            Ok(None) => continue,
            Err(reason) => Err(FileError::Line { line, reason }),
        };
        match valid {
            Ok(article) => {
                articles.push(article);
                lines.push(line);
            }
            Err(error) => {
                let _ = sender.blocking_send(Err(error));
                return;
            }
        }
        if articles.len() == BATCH_SIZE {
            let batch = Batch {
                articles: std::mem::replace(&mut articles, Vec::with_capacity(BATCH_SIZE)),
                lines: std::mem::replace(&mut lines, Vec::with_capacity(BATCH_SIZE)),
            };
            if sender.blocking_send(Ok(batch)).is_err() {
                return;
            }
        }
    }
    if !articles.is_empty() {
        let _ = sender.blocking_send(Ok(Batch { articles, lines }));
    }
}

fn validate(
    draft: ArticleDraft,
    now: OffsetDateTime,
    line: usize,
) -> Result<ValidArticle, FileError> {
    article::validate(draft, now).map_err(|violations| FileError::Line {
        line,
        reason: article::describe_violations(&violations),
    })
}

fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, FileError> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = std::fs::File::open(path)
        .map_err(|error| FileError::File(format!("cannot open: {error}")))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}
