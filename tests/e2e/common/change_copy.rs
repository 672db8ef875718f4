//! A consumer's copy of the articles, built from pages and StreamArticleChanges
//! applied by revision, as the contract tells consumers to: a change whose
//! revision is not newer than the copy's is ignored, a tombstone removes,
//! and (with a tag filter) so does a revision without the tag. Every change
//! is checked on the way: none twice, each article's revisions increasing,
//! PUBLISHED and UPDATED carry a PUBLISHED article, a WITHDRAWN one a
//! tombstone.

use std::collections::{HashMap, HashSet};

use article_service::proto::{Article, ArticleChange, ArticleState, ChangeType};

pub struct ChangeCopy {
    label: &'static str,
    /// The tag filter's slug, if any.
    tag: Option<&'static str>,
    articles: HashMap<String, Article>,
    /// (article id, revision, change type) of every change applied.
    seen: HashSet<(String, i64, i32)>,
    last_revision: HashMap<String, i64>,
    /// Changes not newer than the copy held (a page showed a later revision).
    pub stale: usize,
}

impl ChangeCopy {
    pub fn new(label: &'static str, tag: Option<&'static str>) -> Self {
        Self {
            label,
            tag,
            articles: HashMap::new(),
            seen: HashSet::new(),
            last_revision: HashMap::new(),
            stale: 0,
        }
    }

    /// An article from a page: kept unless the copy holds a newer revision.
    pub fn hold(&mut self, article: Article) {
        let newer = self
            .articles
            .get(&article.id)
            .is_none_or(|held| held.revision < article.revision);
        if newer {
            self.articles.insert(article.id.clone(), article);
        }
    }

    /// Checks and applies one change; returns its article.
    pub fn apply(&mut self, change: &ArticleChange) -> Article {
        let label = self.label;
        let article = change.article.clone().expect("a change carries an article");
        assert!(
            self.seen
                .insert((article.id.clone(), article.revision, change.r#type)),
            "{label}: received twice: {change:?}"
        );
        if let Some(&last) = self.last_revision.get(&article.id) {
            assert!(
                article.revision > last,
                "{label}: revision {} of {} after {last}",
                article.revision,
                article.slug
            );
        }
        self.last_revision
            .insert(article.id.clone(), article.revision);
        let withdrawn = change.r#type == ChangeType::Withdrawn as i32;
        if withdrawn {
            assert_eq!(
                (article.state, article.body.as_str(), article.title.as_str()),
                (ArticleState::Withdrawn as i32, "", ""),
                "{label}: a tombstone: {change:?}"
            );
        } else {
            assert!(
                change.r#type == ChangeType::Published as i32
                    || change.r#type == ChangeType::Updated as i32,
                "{label}: change type {}",
                change.r#type
            );
            assert_eq!(
                article.state,
                ArticleState::Published as i32,
                "{label}: {change:?}"
            );
        }
        let newer = self
            .articles
            .get(&article.id)
            .is_none_or(|held| held.revision < article.revision);
        if !newer {
            self.stale += 1;
            return article;
        }
        let has_tag = self
            .tag
            .is_none_or(|tag| article.tags.iter().any(|t| t.slug == tag));
        if withdrawn || !has_tag {
            self.articles.remove(&article.id);
        } else {
            self.articles.insert(article.id.clone(), article.clone());
        }
        article
    }

    /// Changes applied so far.
    pub fn changes(&self) -> usize {
        self.seen.len()
    }

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    /// The copy's articles, by id.
    pub fn sorted(&self) -> Vec<Article> {
        let mut articles: Vec<Article> = self.articles.values().cloned().collect();
        articles.sort_by(|a, b| a.id.cmp(&b.id));
        articles
    }
}
