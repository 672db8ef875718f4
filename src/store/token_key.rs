//! The key that signs page and resume tokens, shared by every replica.

use std::sync::Arc;

use rand::RngCore;
use tokio::sync::OnceCell;

use super::{Role, Store};
use crate::domain::token::TokenCodec;
use crate::error::Result;

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
    /// Returns the cluster's token key, creating it on first use. Concurrent
    /// first starts race harmlessly: one insert wins and all read it back.
    pub async fn token_key(&self) -> Result<Vec<u8>> {
        self.bounded(async {
            let mut candidate = [0u8; 32];
            rand::rng().fill_bytes(&mut candidate);
            let mut conn = self.acquire(Role::Primary).await?;
            sqlx::query(
                "INSERT INTO token_keys (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&candidate[..])
            .execute(&mut *conn)
            .await?;
            let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM token_keys WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?;
            Ok(key)
        })
        .await
    }
}
