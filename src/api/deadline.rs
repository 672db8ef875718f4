//! Every call answers within the caller's deadline and within the server's
//! request timeout (`REQUEST_TIMEOUT_MS`, 5 s by default, the contract's
//! bound). A call that runs out of the caller's own deadline is
//! DEADLINE_EXCEEDED (the caller chose it; the database may be fine), one
//! that runs out of the server's request timeout is UNAVAILABLE (the
//! database held it up), both answered in time rather than as tonic's
//! CANCELLED when the deadline passes.
//!
//! Here rather than a tower layer in `server`: the handlers call it around
//! their own database work, and `api` must not import `server`.

use std::time::Duration;

use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};

/// The request timeout when none is configured: the contract's 5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The part of the request timeout kept for the answer to reach the caller:
/// a tenth of it, at most this much (so 4.5 s of the default 5 s go to the
/// call). Store operations have their own, shorter bound; this one caps a
/// call that makes several.
const MAX_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);

/// The part of a caller's deadline kept for the answer to reach it: a tenth
/// of the deadline, at least [`MIN_MARGIN`] and at most this much.
const MAX_MARGIN: Duration = Duration::from_millis(250);

/// At least this much of a caller's deadline is kept: tonic's own timer of
/// the same deadline started earlier (before the request message arrived)
/// and would otherwise end the call first, as CANCELLED.
const MIN_MARGIN: Duration = Duration::from_millis(2);

/// A caller's deadline shorter than this has expired by the time any work
/// could start: such a call is answered DEADLINE_EXCEEDED on arrival
/// (`server::admission`), before tonic's timer could call it CANCELLED.
pub const EXPIRED_BELOW: Duration = Duration::from_millis(5);

/// How long a call may take when the caller set no deadline, with the
/// server's request timeout `timeout`.
pub fn cap(timeout: Duration) -> Duration {
    timeout - (timeout / 10).min(MAX_TIMEOUT_MARGIN)
}

/// How long a call may take, and whose bound that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub duration: Duration,
    /// The caller's deadline set it (it is shorter than the server's cap).
    pub set_by_caller: bool,
}

/// How long the call with this metadata may take, with the server's request
/// timeout `timeout`.
pub fn budget(metadata: &MetadataMap, timeout: Duration) -> Budget {
    let cap = cap(timeout);
    let by_server = Budget {
        duration: cap,
        set_by_caller: false,
    };
    let Some(deadline) = metadata
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)
    else {
        return by_server;
    };
    let margin = (deadline / 10).clamp(MIN_MARGIN, MAX_MARGIN);
    let by_caller = deadline.saturating_sub(margin);
    if by_caller < cap {
        Budget {
            duration: by_caller,
            set_by_caller: true,
        }
    } else {
        by_server
    }
}

/// Runs `call` within `budget`. Past a caller's deadline the call is
/// DEADLINE_EXCEEDED; past the server's cap it is UNAVAILABLE (the only
/// thing a handler waits on that long is the database).
pub async fn within<T>(budget: Budget, call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(budget.duration, call)
        .await
        .unwrap_or_else(|_| {
            Err(if budget.set_by_caller {
                Error::DeadlineExceeded("the call's deadline expired before it was done".into())
            } else {
                Error::Unavailable("the database did not answer within the call's deadline".into())
            })
        })
}

/// A `grpc-timeout` value: at most 8 digits, then a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let digits_len = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(digits_len)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3_600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(timeout: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", timeout.parse().unwrap());
        metadata
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3_600)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            parse_grpc_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("7n"), Some(Duration::from_nanos(7)));
        for bad in [
            "",
            "S",
            "1",
            "1s",
            "123456789S",
            "-1S",
            "+1S",
            "1.5S",
            "é",
            "1é",
        ] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_budget_leaves_a_margin_within_the_deadline() {
        let default = Duration::from_millis(4_500);
        let budget = |metadata: &MetadataMap| budget(metadata, DEFAULT_TIMEOUT);
        let by_server = |duration| Budget {
            duration,
            set_by_caller: false,
        };
        let by_caller = |duration| Budget {
            duration,
            set_by_caller: true,
        };
        assert_eq!(budget(&MetadataMap::new()), by_server(default));
        assert_eq!(budget(&metadata("garbage")), by_server(default));
        assert_eq!(
            budget(&metadata("1500m")),
            by_caller(Duration::from_millis(1_350))
        );
        assert_eq!(
            budget(&metadata("3S")),
            by_caller(Duration::from_millis(2_750))
        );
        assert_eq!(
            budget(&metadata("100m")),
            by_caller(Duration::from_millis(90))
        );
        assert_eq!(budget(&metadata("1H")), by_server(default));
        assert_eq!(budget(&metadata("0n")), by_caller(Duration::ZERO));
        assert_eq!(budget(&metadata("1n")), by_caller(Duration::ZERO));
        assert_eq!(budget(&metadata("3m")), by_caller(Duration::from_millis(1)));
    }

    #[test]
    fn the_request_timeout_caps_every_budget() {
        assert_eq!(cap(DEFAULT_TIMEOUT), Duration::from_millis(4_500));
        assert_eq!(cap(Duration::from_secs(2)), Duration::from_millis(1_800));
        assert_eq!(cap(Duration::from_millis(400)), Duration::from_millis(360));
        let timeout = Duration::from_millis(400);
        let duration = |metadata: &MetadataMap| budget(metadata, timeout).duration;
        assert_eq!(duration(&MetadataMap::new()), Duration::from_millis(360));
        assert_eq!(duration(&metadata("3S")), Duration::from_millis(360));
        assert!(!budget(&metadata("3S"), timeout).set_by_caller);
        assert_eq!(duration(&metadata("200m")), Duration::from_millis(180));
    }

    #[tokio::test]
    async fn a_call_past_the_servers_cap_is_unavailable_past_the_callers_deadline_exceeded() {
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let ten_ms = Duration::from_millis(10);
        let server_cap = Budget {
            duration: ten_ms,
            set_by_caller: false,
        };
        let caller_deadline = Budget {
            duration: ten_ms,
            set_by_caller: true,
        };
        assert!(matches!(
            within(server_cap, slow()).await,
            Err(Error::Unavailable(_))
        ));
        assert!(matches!(
            within(caller_deadline, slow()).await,
            Err(Error::DeadlineExceeded(_))
        ));
        let fast = within(budget(&MetadataMap::new(), DEFAULT_TIMEOUT), async {
            Ok(7)
        });
        assert_eq!(fast.await.ok(), Some(7));
    }
}
