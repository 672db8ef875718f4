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

use super::convert::{View, article_into_proto, change_into_proto};
use super::encoded::EncodedGetArticleResponse;
use crate::domain::lifecycle::Change;
use crate::proto;

/// Bytes before the message in a gRPC frame: its flag byte and length.
pub const FRAME_HEADER_LEN: usize = 5;

/// A frame's header, once `bytes` hold it: the compression flag (0 plain,
/// 1 compressed; anything else is no gRPC message) and the length the
/// message is declared to have.
pub fn frame_header(bytes: &[u8]) -> Option<(u8, u32)> {
    let [flag, a, b, c, d, ..] = *bytes else {
        return None;
    };
    Some((flag, u32::from_be_bytes([a, b, c, d])))
}

/// `message` as one uncompressed gRPC frame.
pub fn frame(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut framed = BytesMut::with_capacity(FRAME_HEADER_LEN + len);
    framed.put_u8(0);
    // A message over 4 GiB cannot be; the largest is about a megabyte.
    framed.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut framed);
    framed.freeze()
}

/// An encoded article framed as a whole GetArticle response, as the cache
/// keeps it: a hit is sent as it is (`server::cached_reads`), one shared
/// allocation for every call, and [`framed_article`] gives the article back
/// without a copy.
pub fn frame_article_response(article: Bytes) -> Bytes {
    frame(&EncodedGetArticleResponse {
        article: Some(article),
    })
}

/// The encoded article inside a frame made by [`frame_article_response`]
/// (`None` for bytes that are not one).
pub fn framed_article(framed: &Bytes) -> Option<Bytes> {
    // The flag and length, then the field's tag (1, length-delimited).
    let mut rest = framed
        .get(FRAME_HEADER_LEN..)?
        .strip_prefix(&[ARTICLE_FIELD_TAG])?;
    let article_len = prost::encoding::decode_varint(&mut rest).ok()?;
    let start = framed.len() - rest.len();
    (u64::try_from(rest.len()).ok() == Some(article_len)).then(|| framed.slice(start..))
}

/// Field 1 (`article`), wire type 2 (length-delimited).
const ARTICLE_FIELD_TAG: u8 = (1 << 3) | 2;

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
        self.0.get(FRAME_HEADER_LEN..).unwrap_or_default()
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

/// A change read from the database, framed as StreamNewArticles sends it:
/// encoded once, straight from the change (a catch-up sends many; no
/// copies of their bodies on the way).
pub fn frame_new_article(change: Change, view: View, resume_token: String) -> Bytes {
    frame(&proto::StreamNewArticlesResponse {
        article: Some(view.apply(article_into_proto(change.article))),
        resume_token,
    })
}

/// A change read from the database, framed as StreamArticleChanges sends
/// it, like [`frame_new_article`].
pub fn frame_change(change: Change, view: View, resume_token: String) -> Bytes {
    let mut change = change_into_proto(change);
    change.article = change.article.map(|article| view.apply(article));
    frame(&proto::StreamArticleChangesResponse {
        change: Some(change),
        resume_token,
    })
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
    fn an_article_response_frame_gives_back_its_article() {
        let article = crate::proto::Article {
            title: "A title".into(),
            body: "word ".repeat(100),
            ..Default::default()
        };
        let encoded = Bytes::from(article.encode_to_vec());
        let framed = frame_article_response(encoded.clone());
        let response = crate::proto::GetArticleResponse {
            article: Some(article),
        };
        assert_eq!(framed, frame(&response));
        assert_eq!(framed_article(&framed), Some(encoded));
        let empty = frame_article_response(Bytes::new());
        assert_eq!(framed_article(&empty), Some(Bytes::new()));
        assert_eq!(framed_article(&framed.slice(..framed.len() - 1)), None);
        assert_eq!(framed_article(&Bytes::from_static(b"article")), None);
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
