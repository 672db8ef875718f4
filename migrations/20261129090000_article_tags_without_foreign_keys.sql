-- article_tags loses its two foreign keys; a trigger keeps what one of them
-- did on delete.
--
-- Why: PostgreSQL checks a foreign key once per inserted row (an executor
-- start, an index probe and a row lock on the referenced row). An import
-- writes about three article_tags rows per article, and those checks were
-- a third of PostgreSQL's time in it: 200,000 articles imported at
-- 8,500-9,400/s with them and 12,300-12,600/s without (BENCHMARKS.md).
--
-- Why it stays correct: the service is the only writer of article_tags, and
-- its one write path (store::articles) inserts a row only in the transaction
-- that has just inserted or updated the article and upserted the tag. Tags
-- are never deleted. What the foreign key on article_id added beyond that
-- was ON DELETE CASCADE, for an article deleted by hand (a takedown, a
-- restore): the statement-level trigger below does the same, costs nothing
-- on insert, and runs once per DELETE statement rather than once per row.
ALTER TABLE article_tags
    DROP CONSTRAINT article_tags_article_id_fkey,
    DROP CONSTRAINT article_tags_tag_slug_fkey;

CREATE FUNCTION article_tags_follow_deleted_articles() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM article_tags t USING deleted_articles d WHERE t.article_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER article_tags_follow_deleted_articles
    AFTER DELETE ON articles
    REFERENCING OLD TABLE AS deleted_articles
    FOR EACH STATEMENT
    EXECUTE FUNCTION article_tags_follow_deleted_articles();
