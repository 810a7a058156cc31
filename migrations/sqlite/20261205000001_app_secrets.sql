-- Secrets the server processes share, made by the first to start: the key
-- that signs the form errors carried in URLs (server/src/form_errors.rs).
CREATE TABLE app_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
