//! The service's configuration: one typed struct per subcommand, read from
//! flags and the environment (a flag overrides its variable). `serve`'s
//! flags are in `serve`, the settings built from them for each room in
//! `settings`.

mod serve;
mod settings;

pub use serve::{ResponseCompression, ServeConfig};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;

#[derive(Debug, Parser)]
#[command(
    name = "article-service",
    version,
    about = "The newsroom's content service"
)]
pub struct Cli {
    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// For humans.
    Text,
}

// Parsed once at startup and taken apart at once: the size difference
// between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the gRPC API.
    Serve(ServeConfig),
    /// Apply the database migrations and exit.
    Migrate(DatabaseConfig),
    /// Store articles from NDJSON or page-text files ("-" for standard input).
    Import(ImportConfig),
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL, e.g. postgres://user:password@host:5432/db
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: SecretString,
}

impl DatabaseConfig {
    /// Connection options; the error never echoes the URL (it may hold a
    /// password).
    pub fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        connect_options("DATABASE_URL", &self.database_url)
    }
}

/// The options of the PostgreSQL URL in the variable `name`; the error names
/// the variable and never echoes the URL (it may hold a password).
fn connect_options(name: &str, url: &SecretString) -> anyhow::Result<PgConnectOptions> {
    use secrecy::ExposeSecret;
    url.expose_secret()
        .parse::<PgConnectOptions>()
        .map_err(|_| anyhow::anyhow!("{name} is not a valid PostgreSQL URL"))
        .map(|options| options.application_name("article-service"))
}

#[derive(Debug, Clone, Args)]
pub struct ImportConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Format of every file; by default by extension (.ndjson, .jsonl, .json
    /// and "-" are NDJSON, anything else page text).
    #[arg(long, value_enum)]
    pub format: Option<ImportFormat>,

    /// A section name to add to the page-text tag vocabulary (repeatable).
    #[arg(long = "section", value_name = "NAME")]
    pub sections: Vec<String>,

    /// Files to import, in order; "-" reads standard input.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Ndjson,
    Text,
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests;
