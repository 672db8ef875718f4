//! The wire format: domain types to and from the proto messages, and the
//! pre-encoded responses the server sends. Both the API's handlers and the
//! feed build their messages here; `wire` imports neither.
//!
//! # Pre-encoded responses
//!
//! Protobuf writes an embedded message field as its number with the
//! length-delimited wire type, the length, then the message's encoding; a
//! `bytes` field of the same number holding that encoding is written
//! identically, repeated or not, and an absent one is absent in both. So a
//! response whose article fields are `bytes` holding encoded `Article`s
//! encodes byte for byte like the generated response it stands for (the
//! tests check each), and the service's descriptors (reflection) still
//! describe the `.proto`. `build.rs` generates the server with these types;
//! clients keep the generated ones.
//!
//! Why: an article read from the cache is already encoded (a hit costs no
//! conversion and no encoding), and a feed event goes to thousands of
//! streams: it is encoded once, and each stream's message shares the bytes.

mod codec;
mod convert;
mod encoded;
mod framed;

pub use codec::ServerCodec;
pub use framed::{
    FRAME_HEADER_LEN, Framed, frame, frame_article_response, frame_change, frame_header,
    frame_new_article, framed_article,
};

pub use convert::{
    View, article_into_proto, article_to_proto, change_into_proto, change_to_proto,
    draft_from_proto, from_timestamp, tag_to_proto, timestamp, view_from_proto,
};
pub use encoded::{
    EncodedChange, EncodedChangeResponse, EncodedGetArticleResponse,
    EncodedListArticlesByTagResponse, EncodedStreamResponse, encode_article, without_body,
};
