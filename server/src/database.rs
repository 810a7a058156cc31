//! Opening the database and bringing its schema up to date.
//!
//! The application's queries run on an [`AnyPool`], so they do not care
//! which database `DATABASE_URL` names. tower-sessions' store needs a pool of
//! the concrete driver, so the session store gets its own small pool on the
//! same database.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    AnyPool,
    any::AnyPoolOptions,
    migrate::MigrateError,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions},
};
use thiserror::Error;
use tower_sessions_sqlx_store::SqliteStore;

/// The migrations for SQLite, embedded in the binary at compile time.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a request waits for a free connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// An open, migrated database.
#[derive(Clone, Debug)]
pub struct Database {
    /// For the application's queries.
    pub pool: AnyPool,
    /// Where tower-sessions keeps sessions (the `tower_sessions` table).
    pub sessions: SqliteStore,
    /// The session store's pool, kept to close it on shutdown.
    session_pool: SqlitePool,
}

/// Why the database could not be opened.
#[derive(Debug, Error)]
pub enum DatabaseError {
    #[error(
        "DATABASE_URL {url:?} is not supported: use a sqlite: URL such as sqlite://data/app.db"
    )]
    UnsupportedUrl { url: String },
    #[error("DATABASE_URL {url:?} is not a valid SQLite URL: {source}")]
    InvalidUrl { url: String, source: sqlx::Error },
    #[error("could not create the folder {folder} for the database: {source}")]
    CreateFolder {
        folder: String,
        source: std::io::Error,
    },
    #[error("could not open the database {url:?}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("could not apply the migrations in migrations/sqlite: {0}")]
    Migrate(#[from] MigrateError),
    #[error("could not create the session table: {0}")]
    SessionTable(sqlx::Error),
}

impl Database {
    /// Opens the database at `url` (creating a SQLite file and its folder if
    /// they do not exist yet) and applies any pending migrations.
    pub async fn open(url: &str) -> Result<Self, DatabaseError> {
        if !url.starts_with("sqlite:") {
            return Err(DatabaseError::UnsupportedUrl {
                url: url.to_owned(),
            });
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| DatabaseError::InvalidUrl {
                url: url.to_owned(),
                source,
            })?
            .create_if_missing(true)
            // Readers do not block the writer, and the reverse: the session
            // pool and the application pool share this file.
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        create_parent_folder(options.get_filename())?;

        let connect_error = |source| DatabaseError::Connect {
            url: url.to_owned(),
            source,
        };
        // Opened first: it creates the file and switches it to WAL mode, a
        // property of the file that the application pool then inherits.
        let session_pool: SqlitePool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(connect_error)?;

        SQLITE_MIGRATIONS.run(&pool).await?;
        let sessions = SqliteStore::new(session_pool.clone());
        sessions
            .migrate()
            .await
            .map_err(DatabaseError::SessionTable)?;
        Ok(Self {
            pool,
            sessions,
            session_pool,
        })
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    /// Waits for open connections to finish their work and closes them.
    pub async fn close(&self) {
        self.pool.close().await;
        self.session_pool.close().await;
    }
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
