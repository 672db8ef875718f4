//! Where a follower keeps its resume token between events, reconnects and
//! runs of the program.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::BoxError;

/// Keeps one resume token. A follower loads it once when it starts and stores
/// every token it receives, after the handler is done with that token's event
/// (heartbeats' tokens too).
///
/// Tokens are bound to their RPC: give `follow_new` and `follow_changes` a
/// store each.
pub trait TokenStore: Send {
    /// The stored token; `None` when nothing was stored yet.
    fn load(&mut self) -> impl Future<Output = Result<Option<String>, BoxError>> + Send;
    /// Replaces the stored token.
    fn store(&mut self, token: &str) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A token kept in memory, for a follower whose position need not outlive the
/// process. Clones share the token, so the caller can read it while a
/// follower runs.
#[derive(Clone, Debug, Default)]
pub struct MemoryTokenStore {
    token: Arc<Mutex<Option<String>>>,
}

impl MemoryTokenStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that starts from `token`: a `changes_token` from
    /// ListArticlesByTag, say.
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            token: Arc::new(Mutex::new(Some(token.into()))),
        }
    }

    /// The token stored last.
    pub fn token(&self) -> Option<String> {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl TokenStore for MemoryTokenStore {
    async fn load(&mut self) -> Result<Option<String>, BoxError> {
        Ok(self.token())
    }

    async fn store(&mut self, token: &str) -> Result<(), BoxError> {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.to_owned());
        Ok(())
    }
}

/// A token kept in a file, written atomically: the token goes to a new file
/// beside it, which is flushed to disk and then renamed over the old one, so
/// after a crash the file holds either the old token or the new one, never a
/// mix or nothing. A missing or empty file means no token yet.
#[derive(Clone, Debug)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenStore for FileTokenStore {
    async fn load(&mut self) -> Result<Option<String>, BoxError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => {
                let token = text.trim();
                Ok((!token.is_empty()).then(|| token.to_owned()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(format!("read {}: {error}", self.path.display()).into()),
        }
    }

    async fn store(&mut self, token: &str) -> Result<(), BoxError> {
        let path = self.path.clone();
        let token = token.to_owned();
        tokio::task::spawn_blocking(move || write_atomically(&path, &token))
            .await
            .map_err(BoxError::from)?
            .map_err(|error| format!("write {}: {error}", self.path.display()).into())
    }
}

fn write_atomically(path: &Path, token: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(file, "{token}")?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    // The rename itself is durable only once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_missing_or_empty_file_is_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileTokenStore::new(dir.path().join("token"));
        assert_eq!(store.load().await.unwrap(), None);
        std::fs::write(dir.path().join("token"), "\n").unwrap();
        assert_eq!(store.load().await.unwrap(), None);
    }

    #[tokio::test]
    async fn stores_and_loads_the_last_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut store = FileTokenStore::new(&path);
        store.store("first").await.unwrap();
        store.store("second").await.unwrap();
        assert_eq!(store.load().await.unwrap().as_deref(), Some("second"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        // A new store on the same file (the next run) finds it.
        let mut again = FileTokenStore::new(&path);
        assert_eq!(again.load().await.unwrap().as_deref(), Some("second"));
    }

    #[tokio::test]
    async fn replaces_the_file_by_rename_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut store = FileTokenStore::new(&path);
        store.store("first").await.unwrap();
        // A reader holding the old file still reads the old token whole: the
        // new token went to another file that replaced this one's name.
        let old = std::fs::File::open(&path).unwrap();
        store.store("second").await.unwrap();
        assert_eq!(std::io::read_to_string(old).unwrap(), "first\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        assert_eq!(entries(dir.path()), ["token"]);
    }

    #[tokio::test]
    async fn a_failed_rename_is_an_error_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails.
        std::fs::create_dir_all(dir.path().join("token/inside")).unwrap();
        let mut store = FileTokenStore::new(dir.path().join("token"));
        let error = store.store("second").await.unwrap_err().to_string();
        assert!(error.starts_with("write "), "{error}");
        assert_eq!(entries(dir.path()), ["token"]);
    }

    #[tokio::test]
    async fn memory_store_clones_share_the_token() {
        let reader = MemoryTokenStore::new();
        let mut writer = reader.clone();
        assert_eq!(writer.load().await.unwrap(), None);
        writer.store("t1").await.unwrap();
        assert_eq!(reader.token().as_deref(), Some("t1"));
        let mut seeded = MemoryTokenStore::with_token("seed");
        assert_eq!(seeded.load().await.unwrap().as_deref(), Some("seed"));
    }
}
