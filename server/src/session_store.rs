//! The session store of whichever database `DATABASE_URL` names.
//!
//! tower-sessions' sqlx stores are one type per database, and the session
//! layer is generic over its store. One enum that forwards to either keeps
//! the router's type the same whatever the database; it also never writes
//! back a session that has ended.

use async_trait::async_trait;
use tower_sessions::{
    ExpiredDeletion, SessionStore as Store,
    session::{Id, Record},
    session_store::Result,
};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// Sessions kept in the application's own database.
#[derive(Clone, Debug)]
pub enum SessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Calls the same method on whichever store this is.
macro_rules! forward {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            SessionStore::Sqlite(store) => store.$method($($arg),*).await,
            SessionStore::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

#[async_trait]
impl Store for SessionStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        forward!(self.create(record))
    }

    /// Writes a session back only while it still exists (and has not
    /// expired): a request that read a session before it was logged out,
    /// and writes it after (its once-a-minute touch), must not bring it
    /// back. New sessions, and new ids, go through `create`.
    async fn save(&self, record: &Record) -> Result<()> {
        if forward!(self.load(&record.id))?.is_none() {
            return Ok(());
        }
        forward!(self.save(record))
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
