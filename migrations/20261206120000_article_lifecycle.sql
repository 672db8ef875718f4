-- The article lifecycle (states, embargo, withdrawal) and the change log
-- that StreamNewArticles and StreamArticleChanges read.
--
-- `articles` keeps each article's current revision, as before: reads are
-- unchanged but for the state filter. `article_revisions` keeps the
-- revisions it superseded, so that a change read long after later changes
-- still carries the article as of its own revision. `article_changes` is the
-- one order of changes to public content; its positions are assigned under
-- the same transaction-scoped advisory lock as feed positions were (see
-- store::writes), so they become visible in increasing order with no gap a
-- reader could skip.

-- 1 PUBLISHED, 2 SCHEDULED, 3 WITHDRAWN. Existing articles were public.
ALTER TABLE articles
    ADD COLUMN state smallint NOT NULL DEFAULT 1 CHECK (state IN (1, 2, 3)),
    ADD COLUMN withdrawal_reason text NOT NULL DEFAULT '',
    -- The position of the article's latest WITHDRAWN change: the streams
    -- leave out every change of the article before it.
    ADD COLUMN withdrawn_position bigint;
ALTER TABLE articles ALTER COLUMN state DROP DEFAULT;

-- `feed_position` is now the position of the change at which the article
-- first became public (NULL while it never has): a paging session leaves
-- out what became public after its first page.
ALTER TABLE articles ALTER COLUMN feed_position DROP NOT NULL;

-- The release job's question: which SCHEDULED articles are due.
CREATE INDEX articles_scheduled ON articles (published_at, id) WHERE state = 2;

CREATE TABLE article_revisions (
    article_id   uuid NOT NULL,
    revision     bigint NOT NULL,
    slug         text NOT NULL,
    title        text NOT NULL,
    summary      text NOT NULL,
    body         text NOT NULL,
    byline       text NOT NULL,
    tag_slugs    text[] NOT NULL,
    tag_names    text[] NOT NULL,
    published_at timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (article_id, revision)
);

DO $$
BEGIN
    ALTER TABLE article_revisions ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not supported by this server; revision bodies stay compressed with pglz';
END
$$;

CREATE TABLE article_changes (
    position     bigint PRIMARY KEY,
    article_id   uuid NOT NULL,
    -- The revision this change produced: its content is the article's row
    -- while that is still the current revision, else article_revisions'.
    revision     bigint NOT NULL,
    -- 1 PUBLISHED, 2 UPDATED, 3 WITHDRAWN.
    change_type  smallint NOT NULL CHECK (change_type IN (1, 2, 3)),
    -- The article became public for the first time (StreamNewArticles).
    first_public boolean NOT NULL,
    change_time  timestamptz NOT NULL,
    reason       text NOT NULL DEFAULT '',
    -- The tag slugs a stream's filter matches: the tags before and after
    -- the change (for a withdrawal, every tag of the article's changes).
    filter_tags  text[] NOT NULL
);

CREATE INDEX article_changes_by_article ON article_changes (article_id, position);

-- Every existing article became public once, at its feed position, so that
-- StreamNewArticles resume tokens issued before this migration keep their
-- meaning. Its content is its current revision (earlier ones were not kept).
INSERT INTO article_changes (position, article_id, revision, change_type, first_public,
                             change_time, filter_tags)
SELECT feed_position, id, revision, 1, true, updated_at, tag_slugs FROM articles;

-- tags.article_count now counts PUBLISHED articles only (every article, so
-- far): unchanged.

-- An article deleted by hand takes its history along (as article_tags).
CREATE OR REPLACE FUNCTION article_tags_follow_deleted_articles() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM article_tags t USING deleted_articles d WHERE t.article_id = d.id;
    DELETE FROM article_revisions r USING deleted_articles d WHERE r.article_id = d.id;
    DELETE FROM article_changes c USING deleted_articles d WHERE c.article_id = d.id;
    RETURN NULL;
END
$$;
