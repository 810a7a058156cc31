//! The `__plural__` table.

use realtime::UserId;
use sqlx::{AnyPool, FromRow};

use super::{__Type__, __Type__Fields, MAX___PLURAL___PER_USER};
use crate::error::{AppError, log_database_error};

#[derive(FromRow)]
struct __Type__Row {
    id: i64,
    owner_id: i64,
    version: i64,
    created_at: i64,
    @@ROW_FIELDS@@
}

impl From<__Type__Row> for __Type__ {
    fn from(row: __Type__Row) -> Self {
        Self {
            id: row.id,
            owner: UserId(row.owner_id),
            version: row.version,
            created_at: row.created_at,
            @@FROM_ROW@@
        }
    }
}

/// The columns every query returns, in `__Type__Row`'s order.
const COLUMNS: &str = "id, owner_id, version, created_at, __COLUMNS__";

/// Each user's __humans__.
#[derive(Clone, Debug)]
pub struct __Plural__ {
    db: AnyPool,
    /// The most __humans__ one user may keep.
    max_per_user: i64,
}

impl __Plural__ {
    pub fn new(db: AnyPool) -> Self {
        Self::with_max_per_user(db, MAX___PLURAL___PER_USER)
    }

    /// A store that lets each user keep at most `max_per_user` __humans__.
    pub fn with_max_per_user(db: AnyPool, max_per_user: i64) -> Self {
        Self { db, max_per_user }
    }

    /// `owner`'s __humans__, newest first.
    pub async fn list(&self, owner: UserId) -> Result<Vec<__Type__>, AppError> {
        sqlx::query_as::<_, __Type__Row>(&format!(
            "SELECT {COLUMNS} FROM __plural__ WHERE owner_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(owner.0)
        .bind(self.max_per_user)
        .fetch_all(&self.db)
        .await
        .map(|rows| rows.into_iter().map(__Type__::from).collect())
        .map_err(internal)
    }

    /// The __human__ `id`, if `owner` has it.
    pub async fn get(&self, id: i64, owner: UserId) -> Result<Option<__Type__>, AppError> {
        sqlx::query_as::<_, __Type__Row>(&format!(
            "SELECT {COLUMNS} FROM __plural__ WHERE id = $1 AND owner_id = $2"
        ))
        .bind(id)
        .bind(owner.0)
        .fetch_optional(&self.db)
        .await
        .map(|row| row.map(__Type__::from))
        .map_err(internal)
    }

    /// Stores a new __human__ of `owner`'s, unless they have as many as they
    /// may keep. (Two creations at the same instant may both pass the
    /// count: the bound is for memory and list sizes, not exact.)
    pub async fn create(
        &self,
        owner: UserId,
        fields: &__Type__Fields,
    ) -> Result<__Type__, AppError> {
        let created = sqlx::query_as::<_, __Type__Row>(&format!(
            "INSERT INTO __plural__ (owner_id, __COLUMNS__) \
             SELECT $1, __INSERT_PARAMS__ \
             WHERE (SELECT COUNT(*) FROM __plural__ WHERE owner_id = $1) < __COUNT_PARAM__ \
             RETURNING {COLUMNS}"
        ))
        .bind(owner.0)
        @@BINDS@@
        .bind(self.max_per_user)
        .fetch_optional(&self.db)
        .await
        .map_err(internal)?;
        created.map(__Type__::from).ok_or_else(|| {
            AppError::Invalid(format!(
                "You have {} __humans__, as many as one may keep: delete some first.",
                self.max_per_user
            ))
        })
    }

    /// Stores new fields for the __human__ `id`, if `owner` has it, one
    /// version up.
    pub async fn update(
        &self,
        id: i64,
        owner: UserId,
        fields: &__Type__Fields,
    ) -> Result<Option<__Type__>, AppError> {
        sqlx::query_as::<_, __Type__Row>(&format!(
            "UPDATE __plural__ SET __SET_CLAUSE__, version = version + 1 \
             WHERE id = __ID_PARAM__ AND owner_id = __OWNER_PARAM__ RETURNING {COLUMNS}"
        ))
        @@BINDS@@
        .bind(id)
        .bind(owner.0)
        .fetch_optional(&self.db)
        .await
        .map(|row| row.map(__Type__::from))
        .map_err(internal)
    }

    /// Deletes the __human__ `id`, if `owner` has it; whether it did.
    pub async fn delete(&self, id: i64, owner: UserId) -> Result<bool, AppError> {
        sqlx::query("DELETE FROM __plural__ WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(owner.0)
            .execute(&self.db)
            .await
            .map(|done| done.rows_affected() > 0)
            .map_err(internal)
    }
}

fn internal(error: sqlx::Error) -> AppError {
    log_database_error(error, "a __plural__ query")
}
