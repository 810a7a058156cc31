-- __Humans__, each kept by the user who made it: written by `__command__`.
-- The same table as in migrations/sqlite.
CREATE TABLE __plural__ (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- 1 when created, one more at each edit.
    version    BIGINT NOT NULL DEFAULT 1,
    -- Seconds since the Unix epoch.
    created_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT),
@@POSTGRES_COLUMNS@@
);

-- A user's __humans__, newest first.
CREATE INDEX __plural___by_owner ON __plural__ (owner_id, id);
