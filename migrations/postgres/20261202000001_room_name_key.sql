-- Room names are unique whatever their case, compared by a key the server
-- writes (the name in Unicode lower case), so that SQLite and PostgreSQL,
-- whose lower() functions differ, agree on which names are taken.
ALTER TABLE rooms ADD COLUMN name_key TEXT;
UPDATE rooms SET name_key = lower(name);
ALTER TABLE rooms ALTER COLUMN name_key SET NOT NULL;
DROP INDEX rooms_name_unique;
CREATE UNIQUE INDEX rooms_name_key_unique ON rooms (name_key);
