//! Opening the database and bringing its schema up to date.
//!
//! `DATABASE_URL` names either a SQLite file (the embedded default) or a
//! PostgreSQL database (for several server processes). The application's
//! queries run on an [`AnyPool`], so they do not care which; each database
//! has its own migrations (`migrations/sqlite`, `migrations/postgres`).
//! tower-sessions' store needs a pool of the concrete driver, so the session
//! store gets its own pool on the same database.

use std::{collections::HashSet, fmt, path::Path, str::FromStr, time::Duration};

use realtime::server::SessionKey;

use sqlx::{
    AnyPool,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migrator},
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions},
};
use thiserror::Error;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::session_store::SessionStore;

/// The migrations of each database, embedded in the binary at compile time.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// How long a request waits for a free connection (or, when the database is
/// down, for it to come back) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serialises the session table's creation between processes starting at
/// once (`CREATE SCHEMA IF NOT EXISTS` races with itself on PostgreSQL).
const SESSION_MIGRATION_LOCK: i64 = 0x7365_7373_696f_6e73; // "sessions"

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The database of a `DATABASE_URL`, from its scheme.
    pub fn of(url: &str) -> Result<Self, DatabaseError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(DatabaseError::UnsupportedUrl {
                url: Redacted(url).to_string(),
            })
        }
    }

    /// Connections each of the process's two pools (the application's and
    /// the session store's) opens at most when `DATABASE_POOL_SIZE` is not
    /// set. A query holds its connection until the calling task runs again
    /// to take the rows, and under load that waits for a turn behind every
    /// busy connection task: with 4 session connections, 32 concurrent
    /// server-function calls on two cores shared with 5,000 sockets queued
    /// for them (docs/benchmarks.md, "Side by side with socketioxide"). A
    /// SQLite connection is a thread of this process, so 32 are cheap; a
    /// PostgreSQL one is a server process, and every application process
    /// opens up to twice this many (PostgreSQL takes 100 by default).
    pub fn default_pool_size(self) -> u32 {
        match self {
            Self::Sqlite => 32,
            Self::Postgres => 10,
        }
    }

    fn migrations_folder(self) -> &'static str {
        match self {
            Self::Sqlite => "migrations/sqlite",
            Self::Postgres => "migrations/postgres",
        }
    }
}

/// An open, migrated database.
#[derive(Clone, Debug)]
pub struct Database {
    /// For the application's queries.
    pub pool: AnyPool,
    /// Where tower-sessions keeps sessions.
    pub sessions: SessionStore,
    backend: Backend,
    /// The session store's pool, kept to close it on shutdown.
    session_pool: SessionPool,
    /// The key that signs form errors in URLs, shared by every process.
    pub form_error_key: crate::form_errors::FormErrorKey,
}

#[derive(Clone, Debug)]
enum SessionPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Why the database could not be opened.
#[derive(Debug, Error)]
pub enum DatabaseError {
    #[error(
        "DATABASE_URL {url:?} is not supported: use sqlite://data/app.db (a file) \
         or postgres://user@host/database"
    )]
    UnsupportedUrl { url: String },
    #[error("DATABASE_URL {url:?} is not valid: {source}")]
    InvalidUrl { url: String, source: sqlx::Error },
    #[error("could not create the folder {folder} for the database: {source}")]
    CreateFolder {
        folder: String,
        source: std::io::Error,
    },
    #[error("could not open the database {url:?} (is it running and reachable?): {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("could not apply the migrations in {folder}: {source}")]
    Migrate {
        folder: &'static str,
        source: MigrateError,
    },
    #[error("could not create the session table: {0}")]
    SessionTable(sqlx::Error),
    #[error("could not read or make the key that signs form errors: {0}")]
    FormErrorKey(sqlx::Error),
}

impl Database {
    /// Opens the database at `url` and applies any pending migrations. A
    /// SQLite file (and its folder) is created if it does not exist yet; a
    /// PostgreSQL database must exist. Each of its two pools opens up to
    /// `pool_size` connections ([`Backend::default_pool_size`] if `None`).
    pub async fn open(url: &str, pool_size: Option<u32>) -> Result<Self, DatabaseError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let pool_size = pool_size.unwrap_or_else(|| backend.default_pool_size());
        let connect_error = |source| DatabaseError::Connect {
            url: Redacted(url).to_string(),
            source,
        };
        let invalid_url = |source| DatabaseError::InvalidUrl {
            url: Redacted(url).to_string(),
            source,
        };

        // The session pool is opened first: for SQLite, it creates the file
        // and switches it to WAL mode, a property of the file that the
        // application pool then inherits.
        let (session_pool, sessions) = match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(invalid_url)?
                    .create_if_missing(true)
                    // Readers do not block the writer, and the reverse: the
                    // session pool and the application pool share this file.
                    .journal_mode(SqliteJournalMode::Wal)
                    .foreign_keys(true);
                create_parent_folder(options.get_filename())?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                let store = SqliteStore::new(pool.clone());
                store.migrate().await.map_err(DatabaseError::SessionTable)?;
                (
                    SessionPool::Sqlite(pool.clone()),
                    SessionStore::Sqlite(store, pool),
                )
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(invalid_url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(pool_size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                let store = PostgresStore::new(pool.clone());
                create_postgres_session_table(&pool, &store)
                    .await
                    .map_err(DatabaseError::SessionTable)?;
                (
                    SessionPool::Postgres(pool.clone()),
                    SessionStore::Postgres(store, pool),
                )
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(connect_error)?;

        let migrations = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // sqlx takes a database lock while migrating, so several processes
        // starting together apply each migration once.
        migrations
            .run(&pool)
            .await
            .map_err(|source| DatabaseError::Migrate {
                folder: backend.migrations_folder(),
                source,
            })?;
        let form_error_key = crate::form_errors::FormErrorKey::load_or_create(&pool)
            .await
            .map_err(DatabaseError::FormErrorKey)?;
        Ok(Self {
            pool,
            sessions,
            backend,
            session_pool,
            form_error_key,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// Which of these sessions no longer live (they expired, or were
    /// deleted): the ones with an id that the session table does not hold
    /// with an expiry still ahead. Keys without an id (from another
    /// process) are not this process's to check.
    pub async fn ended_sessions(
        &self,
        sessions: Vec<SessionKey>,
    ) -> Result<Vec<SessionKey>, sqlx::Error> {
        // A few hundred ids per query keeps each statement small.
        const PER_QUERY: usize = 500;
        let mut ended = Vec::new();
        let checkable: Vec<SessionKey> = sessions
            .into_iter()
            .filter(|key| key.id().is_some())
            .collect();
        for chunk in checkable.chunks(PER_QUERY) {
            let ids: Vec<String> = chunk
                .iter()
                .filter_map(|key| key.id().map(str::to_owned))
                .collect();
            let live: HashSet<String> = match &self.session_pool {
                SessionPool::Sqlite(pool) => {
                    let marks = vec!["?"; ids.len()].join(", ");
                    let sql = format!(
                        "SELECT id FROM tower_sessions WHERE expiry_date > ? AND id IN ({marks})"
                    );
                    // The store writes expiry dates as it binds them here.
                    let now = tower_sessions::cookie::time::OffsetDateTime::now_utc();
                    let mut query = sqlx::query_scalar::<_, String>(&sql).bind(now);
                    for id in &ids {
                        query = query.bind(id);
                    }
                    query.fetch_all(pool).await?.into_iter().collect()
                }
                SessionPool::Postgres(pool) => sqlx::query_scalar::<_, String>(
                    "SELECT id FROM tower_sessions.session WHERE expiry_date > now() AND id = ANY($1)",
                )
                .bind(&ids)
                .fetch_all(pool)
                .await?
                .into_iter()
                .collect(),
            };
            ended.extend(
                chunk
                    .iter()
                    .filter(|key| key.id().is_some_and(|id| !live.contains(id)))
                    .cloned(),
            );
        }
        Ok(ended)
    }

    /// Waits for open connections to finish their work and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
        match &self.session_pool {
            SessionPool::Sqlite(pool) => pool.close().await,
            SessionPool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Creates tower-sessions' table if it is missing, one process at a time.
async fn create_postgres_session_table(pool: &PgPool, store: &PostgresStore) -> sqlx::Result<()> {
    // One connection holds the lock for the whole migration.
    let mut lock = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SESSION_MIGRATION_LOCK)
        .execute(&mut *lock)
        .await?;
    let migrated = store.migrate().await;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(SESSION_MIGRATION_LOCK)
        .execute(&mut *lock)
        .await?;
    migrated
}

/// SQLite creates the database file but not the folders above it.
fn create_parent_folder(file: &Path) -> Result<(), DatabaseError> {
    match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => {
            std::fs::create_dir_all(folder).map_err(|source| DatabaseError::CreateFolder {
                folder: folder.display().to_string(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// A database URL with its password hidden, for messages and logs.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        // scheme://user:password@host/…: the password is between the first
        // ':' after "://" and the last '@' before the path.
        let Some(start) = url.find("://").map(|i| i + 3) else {
            return f.write_str(url);
        };
        let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
        let authority = &url[start..authority_end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => write!(
                f,
                "{}{}:***{}",
                &url[..start],
                &authority[..colon],
                &url[start + at..]
            ),
            _ => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_database() {
        assert_eq!(
            Backend::of("sqlite://data/app.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::of("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::of("mysql://u:secret@h/db").is_err());
    }

    #[test]
    fn passwords_never_reach_messages() {
        let shown = |url| Redacted(url).to_string();
        assert_eq!(
            shown("postgres://app:s3cret@db.internal:5432/app"),
            "postgres://app:***@db.internal:5432/app"
        );
        assert_eq!(shown("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(shown("sqlite://data/app.db"), "sqlite://data/app.db");
        assert_eq!(
            shown("postgres://a:p@ss@h/db?sslmode=require"),
            "postgres://a:***@h/db?sslmode=require"
        );
        let error = Backend::of("mysql://root:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
