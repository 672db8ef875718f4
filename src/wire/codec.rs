//! The server's codec: prost's, with tonic's per-call encode buffer sized to
//! each message instead of preallocated.
//!
//! tonic gives every call a buffer for its encoded responses, 8 KiB by
//! default, allocated when the call starts and kept for its whole life. A
//! feed stream spends most of its life idle, and there are 10,000 of them:
//! that buffer was the largest part of an open stream's cost (8 KiB of about
//! 12 KiB, measured with heaptrack). Here the buffer starts at 1 KiB (a
//! heartbeat's size; tonic also takes it as the step by which a compressed
//! response's buffer grows, so it cannot be 0) and each message reserves
//! what it needs.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// A call's encode buffer to start with.
const INITIAL_BUFFER: usize = 1024;

/// Responses up to this many bytes are gathered into one write before the
/// stream yields to the connection (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// prost's codec with the encode buffer allocated per message.
#[derive(Debug)]
pub struct ServerCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ServerCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ServerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        SizedEncoder(ProstEncoder::new(BufferSettings::new(
            INITIAL_BUFFER,
            YIELD_THRESHOLD,
        )))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Reserves each message's exact size before prost writes it (one
/// allocation, not a series of doublings from empty).
#[derive(Debug)]
pub struct SizedEncoder<T>(ProstEncoder<T>);

impl<T: Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.reserve(item.encoded_len());
        self.0.encode(item, buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
