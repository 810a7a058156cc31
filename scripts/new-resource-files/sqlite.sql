-- __Humans__, each kept by the user who made it: written by `__command__`.
-- The same table as in migrations/postgres.
CREATE TABLE __plural__ (
    -- AUTOINCREMENT: an id is never used again, even once deleted.
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 1 when created, one more at each edit.
    version    INTEGER NOT NULL DEFAULT 1,
    -- Seconds since the Unix epoch.
    created_at INTEGER NOT NULL DEFAULT (unixepoch()),
@@SQLITE_COLUMNS@@
);

-- A user's __humans__, newest first.
CREATE INDEX __plural___by_owner ON __plural__ (owner_id, id);
