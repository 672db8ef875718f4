//! When and how soon a follower reconnects.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tonic::Code;

/// How a follower reconnects after its stream ends: exponential backoff,
/// optionally jittered, forever, for the statuses [`Reconnect::retries`]
/// accepts.
///
/// The wait before the n-th reconnect in a row is `d = initial * 2^(n-1)`,
/// at most `max`; with `jitter` it is drawn at random from `[d/2, d)`, so many
/// clients cut off at once (a replica's shutdown) do not come back in step.
/// The count starts again once a stream delivers a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconnect {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Spread each wait over `[d/2, d)`.
    pub jitter: bool,
}

impl Default for Reconnect {
    /// 100 ms, doubling up to 5 s, jittered: after an outage a follower is
    /// back within seconds (takedowns wait on it), and the jitter spreads
    /// the followers of a replica that went away over the last wait.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter: true,
        }
    }
}

impl Reconnect {
    /// The waits, one per reconnect in a row.
    pub(crate) fn waits(&self) -> impl Iterator<Item = Duration> + use<> {
        // backon's jitter adds up to the wait again (`[d, 2d)`): halving the
        // bounds makes that `[d/2, d)`, so `max` stays the longest wait.
        let initial = self.initial.min(self.max);
        let (initial, max) = if self.jitter {
            (initial / 2, self.max / 2)
        } else {
            (initial, self.max)
        };
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(initial)
            .with_max_delay(max)
            .without_max_times();
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }

    /// Whether a stream that ended with `status` (or could not be opened) is
    /// opened again:
    ///
    /// - UNAVAILABLE: the service shuts down, its database is away, it sheds
    ///   load, or the connection failed.
    /// - CANCELLED: the connection went away under the call (an HTTP/2 GOAWAY
    ///   or RST_STREAM CANCEL from a proxy or a replica going away).
    /// - RESOURCE_EXHAUSTED: the service is over its limits (the contract's
    ///   overload answer), so later is the right time to try again.
    /// - ABORTED: the service's word for "try the whole thing again".
    /// - UNKNOWN and INTERNAL: how a stream cut by a proxy, or reset without
    ///   its trailers, is reported (tonic: "missing grpc-status trailer"),
    ///   besides a fault of the service, which a follower outlives better by
    ///   waiting than by stopping (takedowns must keep arriving).
    /// - DEADLINE_EXCEEDED: the request reached the service too slowly (a
    ///   congested link).
    /// - Any status made on this side from a transport error (it carries a
    ///   source error: a reset connection, a broken HTTP/2 frame), whatever
    ///   its code; the service's own statuses never carry one.
    ///
    /// Everything else says the request is wrong, which trying again cannot
    /// fix, and is never retried: INVALID_ARGUMENT (a token the service
    /// rejects), UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
    /// FAILED_PRECONDITION, UNIMPLEMENTED, and the rest.
    pub fn retries(status: &tonic::Status) -> bool {
        use std::error::Error as _;
        matches!(
            status.code(),
            Code::Unavailable
                | Code::Cancelled
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Unknown
                | Code::Internal
                | Code::DeadlineExceeded
        ) || status.source().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_max_without_jitter() {
        let policy = Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            jitter: false,
        };
        let waits: Vec<u128> = policy.waits().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500, 500]);
    }

    #[test]
    fn jittered_waits_stay_within_half_of_the_wait_and_the_wait() {
        let policy = Reconnect {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            jitter: true,
        };
        let bounds = [100, 200, 400, 800, 1000, 1000, 1000];
        for _ in 0..50 {
            for (wait, bound) in policy.waits().zip(bounds) {
                let bound = Duration::from_millis(bound);
                assert!(
                    wait >= bound / 2 && wait <= bound,
                    "{wait:?} not in [{:?}, {bound:?}]",
                    bound / 2
                );
            }
        }
    }

    #[test]
    fn retries_only_what_may_succeed_later() {
        for code in [
            Code::Unavailable,
            Code::Cancelled,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::Unknown,
            Code::Internal,
            Code::DeadlineExceeded,
        ] {
            assert!(
                Reconnect::retries(&tonic::Status::new(code, "x")),
                "{code:?}"
            );
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::OutOfRange,
            Code::AlreadyExists,
            Code::DataLoss,
        ] {
            assert!(
                !Reconnect::retries(&tonic::Status::new(code, "x")),
                "{code:?}"
            );
        }
    }

    #[test]
    fn retries_a_transport_error_whatever_its_code() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = tonic::Status::from_error(Box::new(io));
        assert!(Reconnect::retries(&status), "{status:?}");
    }
}
