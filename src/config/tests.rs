//! Tests of the configuration's limits.

use clap::Parser;

use super::{Cli, Command};

fn serve(settings: &[(&str, &str)]) -> Result<Cli, clap::Error> {
    let mut args = vec![
        "article-service".to_owned(),
        "serve".to_owned(),
        "--database-url=postgres://localhost/articles".to_owned(),
    ];
    args.extend(
        settings
            .iter()
            .map(|(name, value)| format!("--{name}={value}")),
    );
    Cli::try_parse_from(args)
}

/// Values that would overflow a duration or an instant, or that a pool
/// cannot be built with, are refused when the configuration is read,
/// not met later as a panic (at the first connection, or at SIGTERM).
#[test]
fn settings_that_could_panic_later_are_refused_at_start() {
    for (name, value) in [
        ("max-connection-age", "18446744073709551615"),
        ("shutdown-grace", "18446744073709551615"),
        ("http2-keepalive-interval", "18446744073709551615"),
        ("http2-keepalive-interval", "0"),
        ("http2-keepalive-timeout", "18446744073709551615"),
        ("database-acquire-timeout-ms", "18446744073709551615"),
        ("database-max-connections", "0"),
        ("database-read-max-connections", "0"),
        ("cache-max-bytes", "18446744073709551615"),
    ] {
        let error = serve(&[(name, value)]).expect_err(name);
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{name}"
        );
    }
}

/// The largest accepted values give settings, and instants, that do not
/// overflow.
#[test]
fn the_largest_accepted_settings_are_usable() {
    let cli = serve(&[
        ("max-connection-age", "2592000"),
        ("max-connection-age-grace", "3600"),
        ("shutdown-grace", "3600"),
        ("http2-keepalive-interval", "86400"),
        ("http2-keepalive-timeout", "3600"),
        ("database-acquire-timeout-ms", "600000"),
        ("database-max-connections", "10000"),
        ("database-read-max-connections", "10000"),
        ("cache-max-bytes", "1099511627776"),
    ])
    .expect("the largest values");
    let Command::Serve(config) = cli.command else {
        panic!("serve");
    };
    let lifetime = config.connection_lifetime().expect("a lifetime");
    assert!(std::time::Instant::now().checked_add(lifetime).is_some());
    assert_eq!(config.pool_settings().max_connections, 10_000);
    assert_eq!(config.cache_settings().article_bytes, 3 << 38);
}
