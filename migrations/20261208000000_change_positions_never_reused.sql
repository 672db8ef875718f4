-- An article deleted by hand takes its changes along (the lifecycle
-- migration). Its change positions must never be given again: a consumer may
-- hold a resume token at one, and its streams would skip the next change
-- numbered there. The highest position ever deleted is kept here, and the
-- change log's head is never below it. The deletion also uncounts the
-- article's tags and empties every replica's read cache.
CREATE TABLE change_log_floor (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    position bigint NOT NULL
);
INSERT INTO change_log_floor (position) VALUES (0);

CREATE OR REPLACE FUNCTION article_tags_follow_deleted_articles() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_log_floor SET position = greatest(position, (
        SELECT coalesce(max(c.position), 0)
        FROM article_changes c JOIN deleted_articles d ON c.article_id = d.id));
    -- tags.article_count counts PUBLISHED articles.
    UPDATE tags t SET article_count = t.article_count - d.deleted
    FROM (SELECT tag_slug, count(*) AS deleted
          FROM deleted_articles, unnest(tag_slugs) AS tag_slug
          WHERE state = 1 GROUP BY tag_slug) d
    WHERE t.slug = d.tag_slug;
    DELETE FROM article_tags t USING deleted_articles d WHERE t.article_id = d.id;
    DELETE FROM article_revisions r USING deleted_articles d WHERE r.article_id = d.id;
    DELETE FROM article_changes c USING deleted_articles d WHERE c.article_id = d.id;
    -- Every replica's read cache drops what it holds ('*': anything may have
    -- changed), at commit, as after any write.
    PERFORM pg_notify('article_changes', '*');
    RETURN NULL;
END
$$;
