-- GetArticle by id: the single-key statement of store::reads::articles_by_keys_on
-- (src/store/reads.rs, select_articles!("articles a WHERE a.id = $1")), with its $1 taken from bench_keys (setup.sql)
-- in the same statement: one round trip per call, as in the service, plus a primary-key probe
-- of the small bench_keys table.
--   pgbench -n -M prepared -c 64 -j 2 -T 10 -D keys=1000000 -f benches/pgbench/get_article_by_id.sql
\set n random(1, :keys)
SELECT a.id, a.slug, a.title, a.summary, a.body, a.byline, a.tag_slugs, a.tag_names, a.published_at, a.updated_at, a.revision, a.state FROM articles a WHERE a.id = (SELECT k.id FROM bench_keys k WHERE k.n = :n);
