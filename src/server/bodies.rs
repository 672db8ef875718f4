//! The bodies admission wraps around a call: the request's, which must
//! start to arrive in time and whose message's bytes are bounded and
//! counted, and the response's, which holds the call's
//! slots until its last byte is handed to the connection and keeps unary
//! responses within their byte budgets.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use super::slot::Slot;
use crate::error::Error;
use crate::wire::{FRAME_HEADER_LEN, frame_header};

pin_project! {
    /// A request body, as admission bounds it: its first frame must arrive
    /// within a timeout of the headers (a client that sends headers and then
    /// nothing gives up its slot quickly instead of holding it for the whole
    /// request timeout), and its message's bytes are counted
    /// ([`MessageBytes`]).
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        // `None` once the message started (or the body ended).
        deadline: Option<Pin<Box<Sleep>>>,
        timeout: Duration,
        bytes: MessageBytes,
    }
}

impl<B> RequestBody<B> {
    pub fn new(inner: B, timeout: Duration, bytes: MessageBytes) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            timeout,
            bytes,
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes, Error = tonic::Status>,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        if let Poll::Ready(polled) = this.inner.poll_frame(cx) {
            *this.deadline = None;
            if let Some(Ok(frame)) = &polled
                && let Some(data) = frame.data_ref()
                && let Err(refused) = this.bytes.saw(data)
            {
                return Poll::Ready(Some(Err(refused)));
            }
            return Poll::Ready(polled);
        }
        if let Some(deadline) = this.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            *this.deadline = None;
            let status = tonic::Status::from(Error::DeadlineExceeded(format!(
                "the request message did not arrive within {} ms of its headers",
                this.timeout.as_millis()
            )));
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The bytes of a request's first message: at most `max_message`, and
/// taken from the instance's `budget` at its declared size (its length
/// prefix, once that has arrived) until the call ends and this is dropped,
/// so that what clients make the server take in of requests is bounded
/// whatever they send. Past either limit the call ends RESOURCE_EXHAUSTED
/// before the message is read.
pub struct MessageBytes {
    max_message: usize,
    budget: Arc<Semaphore>,
    // The 5-byte prefix (compression flag, length) as it arrives: `seen` of
    // its bytes so far.
    prefix: [u8; FRAME_HEADER_LEN],
    seen: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

impl MessageBytes {
    pub fn new(max_message: usize, budget: Arc<Semaphore>) -> Self {
        Self {
            max_message,
            budget,
            prefix: [0; FRAME_HEADER_LEN],
            seen: 0,
            _permit: None,
        }
    }

    /// Takes in the next bytes of the body; an error once the prefix shows
    /// a message that does not fit.
    fn saw(&mut self, data: &[u8]) -> Result<(), tonic::Status> {
        if self.seen == self.prefix.len() {
            return Ok(());
        }
        for (slot, byte) in self.prefix.iter_mut().skip(self.seen).zip(data) {
            *slot = *byte;
            self.seen += 1;
        }
        // A first byte other than the compression flag (0 or 1) is no gRPC
        // message: tonic refuses it as such.
        let Some((flag, length)) = frame_header(&self.prefix[..self.seen]) else {
            return Ok(());
        };
        if flag > 1 {
            return Ok(());
        }
        if usize::try_from(length).map_or(true, |bytes| bytes > self.max_message) {
            return Err(tonic::Status::from(Error::ResourceExhausted(format!(
                "a request message of {length} bytes; this method takes at most {}",
                self.max_message
            ))));
        }
        match self.budget.clone().try_acquire_many_owned(length) {
            Ok(permit) => {
                self._permit = Some(permit);
                Ok(())
            }
            Err(_) => Err(tonic::Status::from(Error::ResourceExhausted(
                "the server is receiving as many request bytes as it allows; retry with backoff"
                    .to_owned(),
            ))),
        }
    }
}

/// The byte budgets of a unary response not yet written: its connection's
/// and the instance's; and the connection's progress counter.
#[derive(Debug)]
pub struct ByteBudget {
    pub connection: Arc<AtomicUsize>,
    pub connection_limit: usize,
    pub instance: Arc<AtomicUsize>,
    pub instance_limit: usize,
    pub progress: Arc<AtomicU64>,
}

/// A unary response goes to the connection in pieces of this size: the
/// connection asks for the next one only when the client's window lets the
/// last one out, so the rest stays here, counted, rather than in the
/// connection's send queue.
const PIECE_BYTES: usize = 16 * 1024;

pin_project! {
    /// A response body that holds its call's slots until it is done or
    /// dropped. A unary response's message (one DATA frame: tonic encodes a
    /// message into one) counts against its byte budgets until its last
    /// piece is handed over; one that does not fit while others wait is
    /// dropped and the call answered RESOURCE_EXHAUSTED instead, so that
    /// clients that do not read cannot make the server hold more than the
    /// budgets.
    pub struct Held<B> {
        #[pin]
        inner: B,
        slots: Vec<Slot>,
        budget: Option<ByteBudget>,
        // What is left of the message, handed over piece by piece.
        rest: Bytes,
        progress: Option<Arc<AtomicU64>>,
        refused: bool,
    }
}

impl<B> Held<B> {
    pub fn new(inner: B, slots: Vec<Slot>, budget: Option<ByteBudget>) -> Self {
        Self {
            inner,
            slots,
            budget,
            rest: Bytes::new(),
            progress: None,
            refused: false,
        }
    }
}

/// The next piece of `rest`, counted as progress.
fn next_piece(rest: &mut Bytes, progress: Option<&Arc<AtomicU64>>) -> Frame<Bytes> {
    if let Some(progress) = progress {
        progress.fetch_add(1, Ordering::AcqRel);
    }
    Frame::data(rest.split_to(rest.len().min(PIECE_BYTES)))
}

/// The trailers that end a response that went past its byte budget.
fn over_budget() -> HeaderMap {
    trailers(&tonic::Status::from(Error::ResourceExhausted(
        "responses to this connection or to all clients wait to be read beyond the server's \
         byte budget; read them, then retry with backoff"
            .into(),
    )))
}

/// The trailers that end a response with `status`.
pub(super) fn trailers(status: &tonic::Status) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(3);
    if status.add_header(&mut trailers).is_err() {
        // Only a message that cannot be a header value gets here.
        trailers = HeaderMap::with_capacity(1);
        trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
    }
    trailers
}

impl<B> Body for Held<B>
where
    B: Body<Data = Bytes, Error = tonic::Status>,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.project();
        if *this.refused {
            return Poll::Ready(None);
        }
        if !this.rest.is_empty() {
            return Poll::Ready(Some(Ok(next_piece(this.rest, this.progress.as_ref()))));
        }
        let polled = this.inner.poll_frame(cx);
        let Poll::Ready(Some(Ok(frame))) = polled else {
            return polled;
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => return Poll::Ready(Some(Ok(frame))),
        };
        let Some(budget) = this.budget.take() else {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        };
        let len = data.len();
        let held = Slot::take_or_first(&budget.connection, len, budget.connection_limit).and_then(
            |connection| {
                Slot::take_or_first(&budget.instance, len, budget.instance_limit)
                    .map(|instance| [connection, instance])
            },
        );
        match held {
            Some(held) => {
                this.slots.extend(held);
                *this.rest = data;
                *this.progress = Some(budget.progress);
                Poll::Ready(Some(Ok(next_piece(this.rest, this.progress.as_ref()))))
            }
            None => {
                *this.refused = true;
                Poll::Ready(Some(Ok(Frame::trailers(over_budget()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.refused || (self.rest.is_empty() && self.inner.is_end_stream())
    }

    // Unknown, not the inner body's: a refused response ends differently.
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    fn answer(bytes: usize) -> impl Body<Data = Bytes, Error = tonic::Status> + Unpin {
        Full::new(Bytes::from(vec![7u8; bytes])).map_err(|never| match never {})
    }

    fn budget(
        connection: &Arc<AtomicUsize>,
        limit: usize,
        progress: &Arc<AtomicU64>,
    ) -> ByteBudget {
        ByteBudget {
            connection: connection.clone(),
            connection_limit: limit,
            instance: Arc::default(),
            instance_limit: usize::MAX,
            progress: progress.clone(),
        }
    }

    #[test]
    fn a_request_message_takes_its_declared_bytes_until_it_is_dropped() {
        let budget = Arc::new(Semaphore::new(100));
        // The prefix split over two frames: 60 bytes declared.
        let mut first = MessageBytes::new(80, budget.clone());
        assert!(first.saw(&[0, 0]).is_ok());
        assert!(first.saw(&[0, 0, 60, 1, 2]).is_ok());
        assert!(first.saw(&[3; 58]).is_ok());
        assert_eq!(budget.available_permits(), 40);
        // 50 more do not fit beside it: refused before the rest is read.
        let mut second = MessageBytes::new(80, budget.clone());
        let refused = second.saw(&[0, 0, 0, 0, 50]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // Over the message limit: refused whatever the budget.
        drop(first);
        assert_eq!(budget.available_permits(), 100);
        let mut large = MessageBytes::new(80, budget.clone());
        let refused = large.saw(&[0, 0, 0, 0, 90]).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // Not a gRPC message (no compression flag): left for tonic to
        // refuse, nothing taken.
        let mut other = MessageBytes::new(80, budget.clone());
        assert!(other.saw(b"POST / HTTP/1.1").is_ok());
        assert_eq!(budget.available_permits(), 100);
    }

    #[tokio::test]
    async fn an_answer_goes_out_in_pieces_and_counts_until_the_last() {
        let connection = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(AtomicU64::new(0));
        let mut held = Held::new(
            answer(40 * 1024),
            Vec::new(),
            Some(budget(&connection, 64 * 1024, &progress)),
        );
        let mut pieces = Vec::new();
        while let Some(frame) = held.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            pieces.push(data.len());
            assert_eq!(connection.load(Ordering::Acquire), 40 * 1024);
        }
        assert_eq!(pieces, [16 * 1024, 16 * 1024, 8 * 1024]);
        assert_eq!(progress.load(Ordering::Acquire), 3);
        drop(held);
        assert_eq!(connection.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn an_answer_past_the_budget_while_another_waits_is_refused() {
        let connection = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(AtomicU64::new(0));
        let waiting = Slot::take(&connection, 10, 20).unwrap();
        let mut held = Held::new(
            answer(11),
            Vec::new(),
            Some(budget(&connection, 20, &progress)),
        );
        let trailers = held
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers["grpc-status"], "8");
        assert!(held.frame().await.is_none());
        assert_eq!(connection.load(Ordering::Acquire), 10);
        assert_eq!(progress.load(Ordering::Acquire), 0);
        drop(waiting);
        // Alone, an answer larger than the whole budget still goes out.
        let mut alone = Held::new(
            answer(30),
            Vec::new(),
            Some(budget(&connection, 20, &progress)),
        );
        let data = alone.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data.len(), 30);
    }
}
