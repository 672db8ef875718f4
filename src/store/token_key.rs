//! The key that signs page and resume tokens, shared by every replica.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{Role, Store};
use crate::domain::token::TokenCodec;
use crate::error::{Error, Result};

/// The token codec, loaded from the database on first use: a server that
/// starts while the database is down still starts, and its token-using calls
/// answer UNAVAILABLE until the database returns.
#[derive(Clone)]
pub struct TokenKeys {
    store: Store,
    codec: Arc<OnceCell<TokenCodec>>,
}

impl TokenKeys {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            codec: Arc::new(OnceCell::new()),
        }
    }

    pub async fn codec(&self) -> Result<&TokenCodec> {
        self.codec
            .get_or_try_init(|| async { Ok(TokenCodec::new(&self.store.token_key().await?)) })
            .await
    }
}

impl Store {
    /// Returns the cluster's token key, which `migrate` makes. A missing key
    /// is an error, never replaced here: a new key would end every token
    /// issued so far, and replicas that still hold the old one would go on
    /// accepting them while the others refuse them.
    pub async fn token_key(&self) -> Result<Vec<u8>> {
        self.bounded(async {
            let mut conn = self.acquire(Role::Primary).await?;
            let key: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT key FROM token_keys WHERE id = 1")
                    .fetch_optional(&mut *conn)
                    .await?;
            key.ok_or_else(|| {
                tracing::error!(
                    "the token key is missing (table token_keys): restore it from a backup, \
                     or run `article-service migrate` to make a new one, which ends every \
                     token issued so far"
                );
                Error::Unavailable("the token key is missing from the database".into())
            })
        })
        .await
    }
}

/// Makes the token key if there is none: `migrate` runs it after the
/// migrations, so a fresh database gets its key there, and an operator whose
/// key is lost and cannot be restored makes a new one the same way,
/// knowingly ending every token issued so far. 32 bytes from two version-4
/// UUIDs: 244 random bits, no extension needed.
pub(super) async fn make_token_key_if_missing(pool: &sqlx::PgPool) -> Result<bool> {
    let made = sqlx::query(
        "INSERT INTO token_keys (id, key) VALUES (1, \
         decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')) \
         ON CONFLICT (id) DO NOTHING",
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(made == 1)
}
