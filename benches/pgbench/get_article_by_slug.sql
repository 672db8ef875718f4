-- GetArticle by slug: the single-key statement of store::reads::articles_by_keys_on
-- (src/store/reads.rs), $1 from bench_keys as in get_article_by_id.sql.
\set n random(1, :keys)
SELECT a.id, a.slug, a.title, a.summary, a.body, a.byline, a.tag_slugs, a.tag_names, a.published_at, a.updated_at, a.revision, a.state FROM articles a WHERE a.slug = (SELECT k.slug FROM bench_keys k WHERE k.n = :n);
