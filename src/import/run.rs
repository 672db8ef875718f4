//! The import runner: reads each file, validates every article by
//! PublishArticle's rules, and stores a file in one transaction.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use time::OffsetDateTime;

use super::ndjson::read_ndjson;
use super::text::parse_page_text;
use super::{Format, SectionVocabulary, decode_utf8};
use crate::config::{ImportConfig, ImportFormat};
use crate::domain::article::{self, ArticleDraft, FieldViolation, ValidArticle};
use crate::error::Error;
use crate::store::{ImportTransaction, PoolSettings, Store, Upserted};

/// Articles per write: enough to amortise each statement's round trip,
/// small enough to keep a batch's JSON parameter a few megabytes.
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
    let draft = parse_page_text(content, vocabulary).map_err(|error| FileError::Line {
        line: error.line,
        reason: error.reason,
    })?;
    let valid = validate(draft, now, 1)?;
    let stored = tx.upsert(vec![valid], now).await?;
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
    let mut summary = FileSummary::default();
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let started = Instant::now();
    let mut last_report = started;
    for (line, record) in read_ndjson(reader) {
        let draft = match record {
            Ok(Some(draft)) => draft,
            Ok(None) => continue,
            Err(reason) => return Err(FileError::Line { line, reason }),
        };
        batch.push(validate(draft, now, line)?);
        if batch.len() == BATCH_SIZE {
            let stored = tx.upsert(std::mem::take(&mut batch), now).await?;
            summary.count(&stored);
            if last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                let rate = summary.total() as f64 / started.elapsed().as_secs_f64();
                tracing::info!(file = %name, line, articles = summary.total(), per_second = rate.round(), "importing");
            }
        }
    }
    if !batch.is_empty() {
        let stored = tx.upsert(batch, now).await?;
        summary.count(&stored);
    }
    Ok(summary)
}

fn validate(
    draft: ArticleDraft,
    now: OffsetDateTime,
    line: usize,
) -> Result<ValidArticle, FileError> {
    article::validate(draft, now).map_err(|violations| FileError::Line {
        line,
        reason: violations
            .iter()
            .map(|FieldViolation { field, description }| format!("{field}: {description}"))
            .collect::<Vec<_>>()
            .join("; "),
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
