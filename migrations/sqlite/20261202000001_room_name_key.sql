-- Room names are unique whatever their case, compared by a key the server
-- writes (the name in Unicode lower case). SQLite's lower() knows ASCII
-- only, so "Élan" and "ÉLAN" both passed the old index here, and not on
-- PostgreSQL: with the key computed in one place, both databases agree.
-- Existing rows get lower(name), which is the same key for ASCII names.
ALTER TABLE rooms ADD COLUMN name_key TEXT;
UPDATE rooms SET name_key = lower(name);
DROP INDEX rooms_name_unique;
CREATE UNIQUE INDEX rooms_name_key_unique ON rooms (name_key);
