-- Accounts. A user name is unique whatever its case ("Ada" and "ada" are the
-- same name); the spelling given at sign-up is the one kept and shown.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- Argon2id, in PHC string format: parameters, salt and hash together.
    password_hash TEXT    NOT NULL,
    -- Seconds since the Unix epoch.
    created_at    INTEGER NOT NULL DEFAULT (unixepoch())
);

CREATE UNIQUE INDEX users_name_unique ON users (lower(name));
