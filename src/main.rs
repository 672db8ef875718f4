//! `article-service`: parse the command line, call the library.

use clap::Parser;

use article_service::config::{Cli, Command};
use article_service::{startup, store, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _log_writer = telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(config) => startup::serve(config).await,
        Command::Migrate(config) => async { store::migrate(config.connect_options()?).await }.await,
        Command::Import(config) => article_service::import::run(config).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("article-service: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
