//! PublishArticle's bearer token check.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};

/// The configured publish token, or none (publishing disabled). Only its
/// SHA-256 digest is kept: comparing digests in constant time reveals neither
/// the token's bytes nor its length through timing.
#[derive(Clone)]
pub struct PublishAuth {
    token_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for PublishAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishAuth")
            .field("enabled", &self.token_digest.is_some())
            .finish()
    }
}

impl PublishAuth {
    pub fn new(token: Option<&SecretString>) -> Self {
        Self {
            token_digest: token
                .map(|token| Sha256::digest(token.expose_secret().as_bytes()).into()),
        }
    }

    /// Checks `authorization: Bearer <token>`.
    pub fn check(&self, metadata: &MetadataMap) -> Result<()> {
        self.check_headers(metadata.as_ref())
    }

    /// [`PublishAuth::check`] on a request's HTTP headers (before tonic).
    pub fn check_headers(&self, headers: &http::HeaderMap) -> Result<()> {
        let Some(expected) = &self.token_digest else {
            return Err(Error::PermissionDenied(
                "publishing is disabled on this server (no publish token configured)".into(),
            ));
        };
        let given = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or(Error::Unauthenticated)?;
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(given.ct_eq(expected)) {
            Ok(())
        } else {
            Err(Error::Unauthenticated)
        }
    }
}

/// The token of an `authorization` value with the Bearer scheme (any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().unwrap());
        metadata
    }

    fn code(result: Result<()>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(Error::Unauthenticated) => "unauthenticated",
            Err(Error::PermissionDenied(_)) => "permission denied",
            Err(_) => "other",
        }
    }

    #[test]
    fn accepts_only_the_configured_token() {
        let auth = PublishAuth::new(Some(&SecretString::from("s3cret-token")));
        assert_eq!(code(auth.check(&metadata("Bearer s3cret-token"))), "ok");
        assert_eq!(code(auth.check(&metadata("bearer s3cret-token"))), "ok");
        assert_eq!(
            code(auth.check(&metadata("Bearer s3cret-tokeN"))),
            "unauthenticated"
        );
        assert_eq!(
            code(auth.check(&metadata("Bearer s3cret-token2"))),
            "unauthenticated"
        );
        assert_eq!(
            code(auth.check(&metadata("Bearer s3cret-toke"))),
            "unauthenticated"
        );
        assert_eq!(
            code(auth.check(&metadata("Basic s3cret-token"))),
            "unauthenticated"
        );
        assert_eq!(
            code(auth.check(&metadata("s3cret-token"))),
            "unauthenticated"
        );
        assert_eq!(code(auth.check(&metadata("Bearer "))), "unauthenticated");
        assert_eq!(code(auth.check(&MetadataMap::new())), "unauthenticated");
    }

    #[test]
    fn without_a_token_publishing_is_disabled() {
        let auth = PublishAuth::new(None);
        assert_eq!(
            code(auth.check(&metadata("Bearer anything"))),
            "permission denied"
        );
        assert_eq!(code(auth.check(&MetadataMap::new())), "permission denied");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let auth = PublishAuth::new(Some(&SecretString::from("s3cret-token")));
        assert_eq!(format!("{auth:?}"), "PublishAuth { enabled: true }");
    }

    /// What the check's timing safety rests on that a test can show: only
    /// the token's SHA-256 digest is kept, never its bytes or its length
    /// (the comparison itself is `subtle`'s `ct_eq` over two 32-byte
    /// digests; no test here times it).
    #[test]
    fn only_the_tokens_digest_is_kept() {
        let token = "s3cret-token";
        let auth = PublishAuth::new(Some(&SecretString::from(token)));
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        assert_eq!(auth.token_digest, Some(digest));
    }
}
