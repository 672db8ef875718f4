-- ListArticlesByTag, first page of 20, uncached: the two statements of Store::articles_by_tag
-- without a cursor (src/store/reads.rs, change_head_on in src/store/changes.rs): the change
-- log's head (the paging session's snapshot), then the page (21 rows: one more tells whether
-- another page follows).
--   pgbench -n -M prepared -c 64 -j 2 -T 10 -D tag=section-0000 -f benches/pgbench/list_first_page.sql
SELECT coalesce(max(position), 0) AS head FROM article_changes \gset
SELECT a.id, a.slug, a.title, a.summary, a.body, a.byline, a.tag_slugs, a.tag_names, a.published_at, a.updated_at, a.revision, a.state, t.published_at AS listed_at FROM article_tags t JOIN articles a ON a.id = t.article_id WHERE t.tag_slug = :tag AND t.visible_from <= :head AND (t.visible_until IS NULL OR t.visible_until > :head) AND a.feed_position <= :head AND a.state = 1 ORDER BY t.published_at DESC, t.article_id DESC LIMIT 21;
