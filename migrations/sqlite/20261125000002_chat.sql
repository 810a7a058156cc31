-- Chat rooms and their messages.
CREATE TABLE rooms (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users (id),
    -- Seconds since the Unix epoch.
    created_at INTEGER NOT NULL DEFAULT (unixepoch())
);

-- Room names are unique whatever their case.
CREATE UNIQUE INDEX rooms_name_unique ON rooms (lower(name));

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    author_id  INTEGER NOT NULL REFERENCES users (id),
    body       TEXT    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch())
);

-- A room's history, newest last.
CREATE INDEX messages_by_room ON messages (room_id, id);
