//! A client of the newsroom's `newsroom.content.v1.ArticleService`.
//!
//! - [`ArticleClient`]: typed calls on one HTTP/2 connection tuned for many
//!   streams; [`ArticleClient::list_by_tag`] pages a tag as a `Stream` of
//!   articles; [`ArticleClient::snapshot`] reads a whole tag with the token
//!   its changes follow from.
//! - [`ArticleClient::follow_new`] and [`ArticleClient::follow_changes`]:
//!   followers of StreamNewArticles and StreamArticleChanges that resume from a
//!   token kept in a [`TokenStore`] ([`MemoryTokenStore`], [`FileTokenStore`]),
//!   reconnect with backoff and jitter ([`Reconnect`]), and hand each event to
//!   a handler once per stored token (see [`Follower`] for exactly what that
//!   promises across a crash).
//!
//! # Example
//!
//! ```no_run
//! use article_client::{ArticleClient, Error, FileTokenStore};
//! use futures::TryStreamExt;
//!
//! # async fn example() -> Result<(), Error> {
//! let client = ArticleClient::connect_lazy("http://article-service.newsroom:50051")?;
//!
//! // A tag's articles, newest first, across every page.
//! let articles: Vec<_> = client.list_by_tag("politics").try_collect().await?;
//! println!("{} articles", articles.len());
//!
//! // Every new article from where the last run stopped, forever.
//! let store = FileTokenStore::new("/var/lib/homepage/new-articles.token");
//! client
//!     .follow_new(&["politics", "US & Canada"], store)
//!     .run(|article| async move {
//!         println!("{}", article.slug);
//!         Ok::<_, std::io::Error>(())
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod follow;
mod reconnect;
mod token_store;

pub mod proto {
    //! The messages and the generated client, from the service's `proto/`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("newsroom.content.v1");
}

pub use client::ArticleClient;
pub use error::{BoxError, Error};
pub use follow::{Changes, Feed, Follower, NewArticles};
pub use proto::{Article, ArticleChange, ArticleState, ArticleView, ChangeType};
pub use reconnect::Reconnect;
pub use token_store::{FileTokenStore, MemoryTokenStore, TokenStore};
