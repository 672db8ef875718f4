-- Articles, tags and their link.
--
-- Tag slugs use the "C" collation so that ORDER BY slug is byte order (the
-- contract's order for ListTags) whatever the database's default collation,
-- and so the primary key index serves that order.

CREATE TABLE tags (
    slug          text COLLATE "C" PRIMARY KEY,
    -- The display name the tag was first stored with; never changes.
    name          text NOT NULL,
    -- Maintained by the publish transaction (see store::articles), so
    -- ListTags never counts rows.
    article_count bigint NOT NULL DEFAULT 0 CHECK (article_count >= 0)
);

-- ListTags pages through the tags that have articles.
CREATE INDEX tags_in_use ON tags (slug) WHERE article_count > 0;

CREATE TABLE articles (
    id            uuid PRIMARY KEY,
    slug          text NOT NULL UNIQUE,
    title         text NOT NULL,
    summary       text NOT NULL,
    body          text NOT NULL,
    byline        text NOT NULL,
    -- The article's tags in the order given, with their display names, so a
    -- read is one index lookup with no join. Display names never change, so
    -- the copy never goes stale.
    tag_slugs     text[] NOT NULL,
    tag_names     text[] NOT NULL,
    published_at  timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    revision      bigint NOT NULL CHECK (revision >= 1),
    -- Store order for StreamNewArticles: assigned under a transaction-scoped
    -- advisory lock, so positions become visible in increasing order with no
    -- gap a reader could skip (see store::articles).
    feed_position bigint NOT NULL UNIQUE
);

CREATE TABLE article_tags (
    tag_slug     text COLLATE "C" NOT NULL REFERENCES tags (slug),
    article_id   uuid NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    -- Copied from articles so that a tag's page is one index range scan:
    -- newest first, then id descending, keyset-paged (no OFFSET).
    published_at timestamptz NOT NULL,
    PRIMARY KEY (tag_slug, published_at, article_id)
);

CREATE INDEX article_tags_by_article ON article_tags (article_id);

-- The key that signs page and resume tokens. Kept in the database so that
-- every replica shares it and tokens survive restarts and upgrades.
CREATE TABLE token_keys (
    id         smallint PRIMARY KEY CHECK (id = 1),
    key        bytea NOT NULL CHECK (octet_length(key) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
