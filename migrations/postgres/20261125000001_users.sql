-- Accounts. The same table as migrations/sqlite: keep the two in step.
-- A user name is unique whatever its case ("Ada" and "ada" are the same
-- name); the spelling given at sign-up is the one kept and shown.
CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT   NOT NULL,
    -- Argon2id, in PHC string format: parameters, salt and hash together.
    password_hash TEXT   NOT NULL,
    -- Seconds since the Unix epoch (an integer on both databases, so the
    -- application reads it the same way from either).
    created_at    BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT)
);

CREATE UNIQUE INDEX users_name_unique ON users (lower(name));
