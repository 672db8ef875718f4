//! Every unary call answers within the caller's deadline, or within 5 s when
//! it set none: a database that stops answering gives UNAVAILABLE in time,
//! rather than the caller's own DEADLINE_EXCEEDED (or tonic's CANCELLED) when
//! the deadline passes.

use std::time::Duration;

use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};

/// How long a call without a deadline may wait on the database: within the
/// contract's 5 s, with room for the answer to travel. Store operations have
/// their own, shorter bound; this one caps a call that makes several.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(4_500);

/// The part of a caller's deadline kept for the answer to reach it: a tenth
/// of the deadline, at most this much.
const MAX_MARGIN: Duration = Duration::from_millis(250);

/// How long the call with this metadata may take.
pub fn budget(metadata: &MetadataMap) -> Duration {
    let Some(timeout) = metadata
        .get("grpc-timeout")
        .and_then(|value| value.to_str().ok())
        .and_then(parse_grpc_timeout)
    else {
        return DEFAULT_BUDGET;
    };
    let margin = (timeout / 10).min(MAX_MARGIN);
    (timeout - margin).min(DEFAULT_BUDGET)
}

/// Runs `call` within `budget`; past it, the call is UNAVAILABLE (the only
/// thing a handler waits on is the database).
pub async fn within<T>(budget: Duration, call: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(budget, call)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(
                "the database did not answer within the call's deadline".into(),
            ))
        })
}

/// A `grpc-timeout` value: at most 8 digits, then a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
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
        assert_eq!(budget(&MetadataMap::new()), DEFAULT_BUDGET);
        assert_eq!(budget(&metadata("garbage")), DEFAULT_BUDGET);
        assert_eq!(budget(&metadata("1500m")), Duration::from_millis(1_350));
        assert_eq!(budget(&metadata("3S")), Duration::from_millis(2_750));
        assert_eq!(budget(&metadata("100m")), Duration::from_millis(90));
        assert_eq!(budget(&metadata("1H")), DEFAULT_BUDGET);
        assert_eq!(budget(&metadata("0n")), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_call_past_its_budget_is_unavailable() {
        let slow = within(Duration::from_millis(10), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        });
        assert!(matches!(slow.await, Err(Error::Unavailable(_))));
        let fast = within(Duration::from_secs(5), async { Ok(7) });
        assert_eq!(fast.await.ok(), Some(7));
    }
}
