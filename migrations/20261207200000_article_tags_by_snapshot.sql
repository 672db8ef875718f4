-- A paging session lists a tag as it was at its snapshot (a change
-- position): every article that had the tag then, exactly once, in the
-- order of its `published_at` then, even when an update moves the article
-- to another date or out of the tag while the session pages.
--
-- So an update that changes an article's tags or `published_at` no longer
-- deletes its rows here: it closes them at the update's change position
-- (`visible_until`) and adds the new ones from that position
-- (`visible_from`). A row serves the snapshots S with
-- visible_from <= S < visible_until (NULL: still open). Updates that keep
-- both (nearly all) leave the rows alone. Rows of an article's first
-- revision have visible_from 0: the article itself is listed only from the
-- position at which it first became public (`articles.feed_position`).
ALTER TABLE article_tags
    ADD COLUMN visible_from bigint NOT NULL DEFAULT 0,
    ADD COLUMN visible_until bigint;

-- An article may come back to a tag at the date it had before: the
-- closed row and the new one differ in visible_from. visible_until is
-- carried in the index too, so that a page stays an index-only scan of it.
ALTER TABLE article_tags DROP CONSTRAINT article_tags_pkey;
ALTER TABLE article_tags
    ADD PRIMARY KEY (tag_slug, published_at, article_id, visible_from) INCLUDE (visible_until);
