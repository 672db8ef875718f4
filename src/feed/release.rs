//! The release job: makes embargoed articles public when their time comes.
//!
//! Every replica runs it; the database decides. Each look asks the database
//! how long until the next embargo ends (by its clock, so replicas' clocks do
//! not matter), sleeps that long (at most `release_poll`), and releases what
//! is due in one transaction under the write lock, which makes each release
//! happen once cluster-wide (`store::writes`). The listener then broadcasts
//! the PUBLISHED changes like any other. A replica that starts after an
//! embargo ended releases the article at once.

use std::time::Duration;

use super::Feed;
use crate::metrics::{RELEASES, RELEASES_PENDING};

/// Runs until shutdown.
pub async fn run_releases(feed: Feed) {
    let released = metrics::counter!(RELEASES);
    released.absolute(0);
    let pending = metrics::gauge!(RELEASES_PENDING);
    let longest = feed.settings.release_poll;
    loop {
        let wait = match feed.store.release_due().await {
            Ok(count) => {
                released.increment(count as u64);
                if count > 0 {
                    tracing::info!(count, "embargoed articles released");
                }
                match feed.store.schedule().await {
                    Ok(schedule) => {
                        pending.set(schedule.pending as f64);
                        until(schedule.next_due_in, longest)
                    }
                    Err(_) => longest,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot release embargoed articles; will retry");
                longest
            }
        };
        tokio::select! {
            () = feed.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long to sleep before the next look.
fn until(next_due_in: Option<f64>, longest: Duration) -> Duration {
    match next_due_in {
        // A little past it: a statement that starts at the exact end of an
        // embargo may see it a microsecond early.
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Duration::from_secs_f64(seconds + 0.005).min(longest)
        }
        // Due now (or the clock reads NaN): look again soon, never spin.
        Some(_) => Duration::from_millis(10),
        None => longest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_until_the_next_embargo_ends_within_the_poll() {
        let poll = Duration::from_secs(1);
        assert_eq!(until(None, poll), poll);
        assert_eq!(until(Some(30.0), poll), poll);
        assert_eq!(until(Some(0.2), poll), Duration::from_secs_f64(0.205));
        assert_eq!(until(Some(-3.0), poll), Duration::from_millis(10));
        assert_eq!(until(Some(f64::NAN), poll), Duration::from_millis(10));
    }
}
