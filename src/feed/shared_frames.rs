//! Large catch-up messages framed once for every stream that reads them.
//!
//! A stream behind the broadcast reads its changes from the database and
//! frames each for itself; a slow reader then holds its own copy of the
//! message HTTP/2 is sending. When many slow readers fall behind together
//! (large articles, clients that cannot keep up), they read the same
//! positions: 500 of them held 500 copies of each 1 MB article. Frames of
//! `SHARED_FROM` bytes or more are kept here, by position, stream kind and
//! view, so that streams reading the same change send the same bytes, as
//! the broadcast's do. Small frames are not worth it (a stream's copy costs
//! little, and a rebuild reads millions of them).

use std::time::Duration;

use moka::sync::Cache;
use prost::bytes::Bytes;

use super::StreamKind;
use crate::wire::View;

/// Frames this large or larger are shared.
const SHARED_FROM: usize = 64 * 1024;

/// How long an unused frame stays.
const IDLE: Duration = Duration::from_secs(30);

pub(crate) struct SharedFrames {
    frames: Cache<(i64, StreamKind, View), Bytes>,
}

impl SharedFrames {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            frames: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, frame: &Bytes| u32::try_from(frame.len()).unwrap_or(u32::MAX))
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// The frame of the change at `position` for a stream of `kind` in
    /// `view`: a shared one if a stream framed it already, else `build`'s
    /// (kept for the others when large).
    pub(crate) fn frame(
        &self,
        position: i64,
        kind: StreamKind,
        view: View,
        build: impl FnOnce() -> Bytes,
    ) -> Bytes {
        let key = (position, kind, view);
        if let Some(shared) = self.frames.get(&key) {
            return shared;
        }
        let framed = build();
        if framed.len() >= SHARED_FROM {
            self.frames.insert(key, framed.clone());
        }
        framed
    }

    /// Forgets every frame: the feed went back (a restored database), and
    /// positions above its head will hold other changes.
    pub(crate) fn clear(&self) {
        self.frames.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_frames_are_shared_and_small_ones_built_each_time() {
        let shared = SharedFrames::new(1 << 20);
        let large = Bytes::from(vec![1; SHARED_FROM]);
        let first = shared.frame(7, StreamKind::Changes, View::Full, || large.clone());
        let second = shared.frame(7, StreamKind::Changes, View::Full, || {
            Bytes::from(vec![2; SHARED_FROM])
        });
        assert_eq!(second, first);
        assert_eq!(
            second.as_ptr(),
            first.as_ptr(),
            "the same bytes, not a copy"
        );
        // Another kind or view is another frame.
        let other = shared.frame(7, StreamKind::NewArticles, View::Full, || {
            Bytes::from(vec![3; SHARED_FROM])
        });
        assert_eq!(other[0], 3);

        let small = shared.frame(8, StreamKind::Changes, View::Full, || {
            Bytes::from_static(b"a")
        });
        let again = shared.frame(8, StreamKind::Changes, View::Full, || {
            Bytes::from_static(b"b")
        });
        assert_eq!((&small[..], &again[..]), (&b"a"[..], &b"b"[..]));
    }

    #[test]
    fn clearing_forgets_every_frame() {
        let shared = SharedFrames::new(1 << 20);
        shared.frame(7, StreamKind::Changes, View::Full, || {
            Bytes::from(vec![1; SHARED_FROM])
        });
        shared.clear();
        let rebuilt = shared.frame(7, StreamKind::Changes, View::Full, || {
            Bytes::from(vec![2; SHARED_FROM])
        });
        assert_eq!(rebuilt[0], 2);
    }
}
