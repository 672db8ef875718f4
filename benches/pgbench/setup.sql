-- pgbench references (benches/pgbench/README.md): a table of the articles' keys by dense row
-- number, so that a script can pick a uniformly random existing article with `\set n random(1,
-- :keys)`. Run once after the import: psql -f benches/pgbench/setup.sql. Not part of the
-- service's schema; only the benchmark database has it.
DROP TABLE IF EXISTS bench_keys;
CREATE TABLE bench_keys AS
    SELECT (row_number() OVER (ORDER BY feed_position))::int AS n, id, slug FROM articles;
ALTER TABLE bench_keys ADD PRIMARY KEY (n);
VACUUM ANALYZE bench_keys;
SELECT count(*) AS keys FROM bench_keys \gset
\echo bench_keys: :keys
