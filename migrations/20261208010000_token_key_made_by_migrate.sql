-- The key that signs every page and resume token is made here, once, and
-- never by a serving replica: a replica that finds it missing (a partial
-- restore, a hand cleanup) says so instead of making a new one, which would
-- end every token issued so far and leave replicas signing with different
-- keys. An existing key (made by a replica before this migration) is kept.
-- 32 bytes from two version-4 UUIDs: 244 random bits, no extension needed.
INSERT INTO token_keys (id, key)
VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))
ON CONFLICT (id) DO NOTHING;
