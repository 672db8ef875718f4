-- A revision's body is read by every consumer rebuilding its copy from the
-- beginning (StreamArticleChanges), a batch of rows at a time. With the
-- default TOAST target (about 2 KB), nearly every body was moved to the
-- TOAST table: a read of a revision was a heap fetch plus a TOAST index
-- lookup and fetches. Keep rows up to 4 KB whole in the table's pages, as
-- `articles` does (20261129050000): longer bodies are compressed (lz4) and
-- stay in the row once compressed below 4 KB. Rows written before keep
-- their place; both are read transparently.
ALTER TABLE article_revisions SET (toast_tuple_target = 4096);
