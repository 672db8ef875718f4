//! Stream messages framed for the wire once, shared by every stream.
//!
//! gRPC sends each message as a frame: a flag byte (0: not compressed), the
//! message's length (4 bytes, big-endian), then the message. A broadcast
//! change is the same message for every stream of a kind and view (its
//! resume token names a position, not a stream), so it is framed once and
//! every stream sends the same bytes: no copy and no allocation per stream,
//! and a stream whose client stopped reading pins the shared frame, not a
//! copy of its own (`server::feed_streams` sends frames as they are).
//!
//! [`Framed`] stands for the stream responses in the generated server, for
//! the calls tonic serves itself (compressed requests): it encodes as the
//! message inside the frame.

use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes before the message in a frame.
const HEADER_LEN: usize = 5;

/// `message` as one uncompressed gRPC frame.
pub fn frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut framed = BytesMut::with_capacity(HEADER_LEN + len);
    framed.put_u8(0);
    // A message over 4 GiB cannot be; the largest is about a megabyte.
    framed.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut framed);
    framed.freeze()
}

/// A framed stream message, as the generated server's response type.
#[derive(Clone, PartialEq, Default)]
pub struct Framed(pub Bytes);

impl std::fmt::Debug for Framed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Framed({} bytes)", self.0.len())
    }
}

impl Framed {
    fn message(&self) -> &[u8] {
        self.0.get(HEADER_LEN..).unwrap_or_default()
    }
}

impl Message for Framed {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.message());
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // The server only sends these; nothing decodes into one.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.message().len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::StreamNewArticlesResponse;

    #[test]
    fn a_frame_is_the_flag_the_length_and_the_message() {
        let message = StreamNewArticlesResponse {
            article: None,
            resume_token: "token".into(),
        };
        let framed = frame(&message);
        let encoded = message.encode_to_vec();
        assert_eq!(framed[0], 0);
        assert_eq!(&framed[1..5], &(encoded.len() as u32).to_be_bytes());
        assert_eq!(&framed[5..], &encoded[..]);
    }

    #[test]
    fn framed_encodes_as_the_message_inside() {
        let message = StreamNewArticlesResponse {
            article: None,
            resume_token: "token".into(),
        };
        let framed = Framed(frame(&message));
        assert_eq!(framed.encoded_len(), message.encoded_len());
        assert_eq!(framed.encode_to_vec(), message.encode_to_vec());
        assert_eq!(
            StreamNewArticlesResponse::decode(framed.encode_to_vec().as_slice()).ok(),
            Some(message)
        );
    }
}
