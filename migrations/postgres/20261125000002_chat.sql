-- Chat rooms and their messages. The same tables as migrations/sqlite.
CREATE TABLE rooms (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL,
    created_by BIGINT NOT NULL REFERENCES users (id),
    -- Seconds since the Unix epoch.
    created_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT)
);

-- Room names are unique whatever their case.
CREATE UNIQUE INDEX rooms_name_unique ON rooms (lower(name));

CREATE TABLE messages (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    author_id  BIGINT NOT NULL REFERENCES users (id),
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT)
);

-- A room's history, newest last.
CREATE INDEX messages_by_room ON messages (room_id, id);
