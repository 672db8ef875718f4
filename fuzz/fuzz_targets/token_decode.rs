//! Page and resume tokens: the one opaque string clients send back.
//!
//! The first byte chooses what the rest is: the token text itself (a forger
//! without the key), or a payload that this target seals with the key's MAC
//! (a forger with the key), so that the fuzzer also reaches the payload
//! decoding behind the MAC check. Either way `open` must return a token or
//! `TokenError::Invalid`, and any token it returns must seal and open back
//! to itself.
#![no_main]

use article_service::domain::token::TokenCodec;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

const KEY: &[u8] = b"fuzzing key";
/// The MAC's length in a token (`domain::token`): HMAC-SHA256 cut to 16 bytes.
const MAC_LEN: usize = 16;

fuzz_target!(|data: &[u8]| {
    let codec = TokenCodec::new(KEY);
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(KEY) else {
            return;
        };
        mac.update(rest);
        let mut sealed = rest.to_vec();
        sealed.extend_from_slice(&mac.finalize().into_bytes()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(sealed)
    };
    if let Ok(token) = codec.open(&text) {
        assert_eq!(codec.open(&codec.seal(&token)), Ok(token));
    }
});
