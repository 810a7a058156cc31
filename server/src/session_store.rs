//! The session store of whichever database `DATABASE_URL` names, and the
//! cap on a login's whole lifetime.
//!
//! tower-sessions' sqlx stores are one type per database, and the session
//! layer is generic over its store. One enum that forwards to either keeps
//! the router's type the same whatever the database; it also never writes
//! back a session that has ended. [`LifetimeCapped`] wraps it to end every
//! login a fixed time after it began.

use std::time::Duration;

use app::auth::session::LOGGED_IN_AT_KEY;
use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};
use tower_sessions::{
    ExpiredDeletion, SessionStore as Store,
    cookie::time::{self, OffsetDateTime},
    session::{Id, Record},
    session_store::{Error, Result},
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The stores' tables, as `SqliteStore::new` and `PostgresStore::new`
/// name them.
const SQLITE_TABLE: &str = "tower_sessions";
const POSTGRES_TABLE: &str = r#""tower_sessions"."session""#;

/// Sessions kept in the application's own database: the store, and its
/// pool for the one statement the store does not have.
#[derive(Clone, Debug)]
pub enum SessionStore {
    Sqlite(SqliteStore, SqlitePool),
    Postgres(PostgresStore, PgPool),
}

/// Calls the same method on whichever store this is.
macro_rules! forward {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            SessionStore::Sqlite(store, _) => store.$method($($arg),*).await,
            SessionStore::Postgres(store, _) => store.$method($($arg),*).await,
        }
    };
}

#[async_trait]
impl Store for SessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        forward!(self.create(record))
    }

    /// Writes a session back only while it still exists (and has not
    /// expired), in one statement: a request that read a session before it
    /// was logged out, and writes it after (its once-a-minute touch), must
    /// not bring it back, even when the log-out lands between a check and
    /// a write. (The stores' own `save` inserts a session that is not
    /// there.) New sessions, and new ids, go through `create`.
    async fn save(&self, record: &Record) -> Result<()> {
        let data = rmp_serde::to_vec(record).map_err(|error| Error::Encode(error.to_string()))?;
        // The same statement on either database (SQLite takes `$1` too).
        macro_rules! write_back {
            ($pool:expr, $table:expr) => {
                sqlx::query(&format!(
                    "UPDATE {} SET data = $1, expiry_date = $2 WHERE id = $3 AND expiry_date > $4",
                    $table
                ))
                .bind(data)
                .bind(record.expiry_date)
                .bind(record.id.to_string())
                .bind(OffsetDateTime::now_utc())
                .execute($pool)
                .await
                .map(drop)
            };
        }
        let written = match self {
            Self::Sqlite(_, pool) => write_back!(pool, SQLITE_TABLE),
            Self::Postgres(_, pool) => write_back!(pool, POSTGRES_TABLE),
        };
        written.map_err(|error| Error::Backend(error.to_string()))
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        forward!(self.load(id))
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        forward!(self.delete(id))
    }
}

#[async_trait]
impl ExpiredDeletion for SessionStore {
    async fn delete_expired(&self) -> Result<()> {
        forward!(self.delete_expired())
    }
}

/// A store whose sessions expire `max_lifetime` after their log-in at the
/// latest (the time [`LOGGED_IN_AT_KEY`] holds), however often they are
/// used. The session layer moves a session's expiry at every use; this
/// moves it no further than that deadline, so the database ends the
/// session then, and the sessions' check closes its sockets. A visitor's
/// session, which has no log-in, is left as it is.
#[derive(Clone, Debug)]
pub struct LifetimeCapped<S> {
    store: S,
    max_lifetime: Duration,
}

impl<S> LifetimeCapped<S> {
    pub fn new(store: S, max_lifetime: Duration) -> Self {
        Self {
            store,
            max_lifetime,
        }
    }

    /// `record`'s expiry, moved back to its login's deadline if that comes
    /// first.
    fn capped_expiry(&self, record: &Record) -> OffsetDateTime {
        let deadline = record
            .data
            .get(LOGGED_IN_AT_KEY)
            .and_then(serde_json::Value::as_i64)
            .and_then(|logged_in_at| OffsetDateTime::from_unix_timestamp(logged_in_at).ok())
            .and_then(|logged_in_at| {
                let lifetime = time::Duration::try_from(self.max_lifetime).ok()?;
                logged_in_at.checked_add(lifetime)
            });
        match deadline {
            Some(deadline) => record.expiry_date.min(deadline),
            None => record.expiry_date,
        }
    }
}

#[async_trait]
impl<S: Store + Clone> Store for LifetimeCapped<S> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        record.expiry_date = self.capped_expiry(record);
        self.store.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        let expiry_date = self.capped_expiry(record);
        if expiry_date == record.expiry_date {
            return self.store.save(record).await;
        }
        let capped = Record {
            expiry_date,
            ..record.clone()
        };
        self.store.save(&capped).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.store.load(id).await
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.store.delete(id).await
    }
}
