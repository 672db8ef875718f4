//! Tests of `token`.

use super::*;
use proptest::prelude::*;
use time::macros::datetime;

fn codec() -> TokenCodec {
    TokenCodec::new(b"test key of the shared database")
}

fn page() -> Token {
    Token::ArticlePage(ArticlePageCursor {
        tag_slug: "us-canada".into(),
        snapshot_position: 42,
        last_published_at: datetime!(2019-12-31 10:30:00.123456 UTC),
        last_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
    })
}

#[test]
fn every_kind_round_trips() {
    let codec = codec();
    for token in [
        page(),
        Token::TagPage(TagPageCursor {
            last_slug: "économie".into(),
        }),
        Token::Resume { feed_position: 7 },
        Token::Resume { feed_position: 0 },
        Token::Changes { position: 7 },
        Token::Changes { position: 0 },
    ] {
        assert_eq!(codec.open(&codec.seal(&token)), Ok(token));
    }
}

#[test]
fn the_longest_tokens_fit() {
    use crate::domain::article::MAX_TAG_CHARS;
    use crate::domain::slug::slugify;
    let codec = codec();
    // Four bytes of UTF-8 per character, lowercased.
    let longest_slug = slugify(&"\u{10400}".repeat(MAX_TAG_CHARS));
    assert_eq!(longest_slug.len(), 4 * MAX_TAG_CHARS);
    for token in [
        Token::ArticlePage(ArticlePageCursor {
            tag_slug: longest_slug.clone(),
            snapshot_position: i64::MIN,
            last_published_at: datetime!(9999-12-31 23:59:59.999999 UTC),
            last_id: Uuid::max(),
        }),
        Token::TagPage(TagPageCursor {
            last_slug: longest_slug.clone(),
        }),
    ] {
        let sealed = codec.seal(&token);
        assert!(sealed.len() <= MAX_TOKEN_LEN, "{} characters", sealed.len());
        assert_eq!(codec.open(&sealed), Ok(token));
    }
}

#[test]
fn another_key_is_refused() {
    let sealed = codec().seal(&page());
    assert_eq!(
        TokenCodec::new(b"another key").open(&sealed),
        Err(TokenError::Invalid)
    );
}

#[test]
fn garbage_is_refused() {
    let codec = codec();
    for text in [
        "",
        "abc",
        "!!!!",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &"A".repeat(5000),
    ] {
        assert_eq!(codec.open(text), Err(TokenError::Invalid), "{text}");
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    let codec = codec();
    let bytes = URL_SAFE_NO_PAD.decode(codec.seal(&page())).unwrap();
    for index in 0..bytes.len() {
        for bit in 0..8 {
            let mut altered = bytes.clone();
            altered[index] ^= 1 << bit;
            assert_eq!(
                codec.open(&URL_SAFE_NO_PAD.encode(&altered)),
                Err(TokenError::Invalid)
            );
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = codec().open(&text);
    }

    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(codec().open(&URL_SAFE_NO_PAD.encode(&bytes)), Err(TokenError::Invalid));
    }

    #[test]
    fn resume_positions_round_trip(position in any::<i64>()) {
        let codec = codec();
        let token = Token::Resume { feed_position: position };
        prop_assert_eq!(codec.open(&codec.seal(&token)), Ok(token));
    }
}

// ---- hostile input: tokens are the one opaque string clients echo back ----

/// Any instant `time` represents, at the microsecond precision tokens
/// (and the database) keep.
fn arb_instant() -> impl Strategy<Value = OffsetDateTime> {
    let first = datetime!(-9999-01-01 0:00 UTC).unix_timestamp();
    let last = datetime!(9999-12-31 23:59:59 UTC).unix_timestamp();
    (first..=last, 0u32..1_000_000).prop_map(|(seconds, micros)| {
        OffsetDateTime::from_unix_timestamp(seconds)
            .and_then(|at| at.replace_microsecond(micros))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    })
}

fn arb_token() -> impl Strategy<Value = Token> {
    prop_oneof![
        (any::<String>(), any::<i64>(), arb_instant(), any::<u128>()).prop_map(
            |(tag_slug, snapshot_position, last_published_at, id)| {
                Token::ArticlePage(ArticlePageCursor {
                    tag_slug,
                    snapshot_position,
                    last_published_at,
                    last_id: Uuid::from_u128(id),
                })
            }
        ),
        any::<String>().prop_map(|last_slug| Token::TagPage(TagPageCursor { last_slug })),
        any::<i64>().prop_map(|feed_position| Token::Resume { feed_position }),
        any::<i64>().prop_map(|position| Token::Changes { position }),
    ]
}

/// The characters a sealed token is made of.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_token_round_trips(token in arb_token()) {
        let codec = codec();
        let sealed = codec.seal(&token);
        prop_assert!(sealed.bytes().all(|b| ALPHABET.contains(&b)), "{}", sealed);
        prop_assert_eq!(codec.open(&sealed), Ok(token));
    }

    /// Control characters, NUL, RTL marks, any Unicode: a typed error.
    #[test]
    fn any_string_is_refused(text in any::<String>()) {
        prop_assert_eq!(codec().open(&text), Err(TokenError::Invalid));
    }

    /// Bytes off the wire, valid UTF-8 or not, the way a server sees them.
    #[test]
    fn any_bytes_as_text_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        prop_assert_eq!(codec().open(&String::from_utf8_lossy(&bytes)), Err(TokenError::Invalid));
    }

    #[test]
    fn any_single_character_change_is_refused(
        token in arb_token(),
        at in any::<prop::sample::Index>(),
        replacement in prop_oneof![
            proptest::sample::select(ALPHABET.to_vec()).prop_map(char::from),
            any::<char>(),
        ],
    ) {
        let codec = codec();
        let sealed = codec.seal(&token);
        let at = at.index(sealed.len());
        let original = sealed.as_bytes().get(at).copied().map(char::from);
        prop_assume!(original != Some(replacement));
        let mut altered = sealed.get(..at).unwrap_or_default().to_owned();
        altered.push(replacement);
        altered.push_str(sealed.get(at + 1..).unwrap_or_default());
        prop_assert_eq!(codec.open(&altered), Err(TokenError::Invalid), "{}", altered);
    }

    #[test]
    fn any_single_bit_flip_is_refused(
        token in arb_token(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let codec = codec();
        let mut bytes = URL_SAFE_NO_PAD.decode(codec.seal(&token)).unwrap_or_default();
        let at = at.index(bytes.len());
        if let Some(byte) = bytes.get_mut(at) {
            *byte ^= 1 << bit;
        }
        prop_assert_eq!(codec.open(&URL_SAFE_NO_PAD.encode(&bytes)), Err(TokenError::Invalid));
    }

    #[test]
    fn truncated_or_extended_tokens_are_refused(
        token in arb_token(),
        cut in any::<prop::sample::Index>(),
        suffix in "[A-Za-z0-9_=.-]{1,8}",
    ) {
        let codec = codec();
        let sealed = codec.seal(&token);
        let cut = cut.index(sealed.len());
        prop_assert_eq!(codec.open(sealed.get(..cut).unwrap_or_default()), Err(TokenError::Invalid));
        prop_assert_eq!(codec.open(&format!("{sealed}{suffix}")), Err(TokenError::Invalid));
        prop_assert_eq!(codec.open(&format!("{suffix}{sealed}")), Err(TokenError::Invalid));
    }

    /// Payloads that carry a valid MAC (as if the key had leaked) but are
    /// not what seal() writes: still a typed error, never a panic.
    #[test]
    fn any_authenticated_payload_decodes_or_is_refused(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let codec = codec();
        let mut bytes = payload.clone();
        bytes.extend_from_slice(codec.tag(&payload).get(..MAC_LEN).unwrap_or_default());
        let _ = codec.open(&URL_SAFE_NO_PAD.encode(&bytes));
    }
}

#[test]
fn a_correctly_sealed_token_over_the_length_limit_is_refused() {
    let codec = codec();
    // Sealed with the right key, so only the length check refuses it.
    let long = codec.seal(&Token::TagPage(TagPageCursor {
        last_slug: "a".repeat(MAX_TOKEN_LEN),
    }));
    assert!(long.len() > MAX_TOKEN_LEN);
    assert_eq!(codec.open(&long), Err(TokenError::Invalid));
    let fits = Token::TagPage(TagPageCursor {
        last_slug: "a".repeat(MAX_TOKEN_LEN / 2),
    });
    assert_eq!(codec.open(&codec.seal(&fits)), Ok(fits));
}
