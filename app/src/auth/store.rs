//! The `users` table.
//!
//! Queries go through [`sqlx::AnyPool`], so the same code runs on SQLite
//! (the embedded default) and on any other database `DATABASE_URL` names.
//! They are checked at run time, not compile time: building needs no
//! database and no `.sqlx` folder.

use sqlx::{AnyPool, FromRow};

use super::{
    AuthError, MAX_PASSWORD_LEN, User, UserId, UserName, check_new_password,
    password::{Hasher, Turns},
};
use crate::error::{AppError, log_database_error};

/// A row of `users`, password hash included; it never leaves the server.
#[derive(FromRow)]
struct UserRow {
    id: i64,
    name: String,
    password_hash: String,
    created_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: UserId(row.id),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

/// Creates and looks up accounts.
#[derive(Clone, Debug)]
pub struct Users {
    db: AnyPool,
    hasher: Hasher,
}

impl Users {
    pub fn new(db: AnyPool, hasher: Hasher) -> Self {
        Self { db, hasher }
    }

    /// The password hasher, shared by every clone.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// Creates an account, or says why not. Either the whole row is
    /// written or nothing is.
    pub async fn sign_up(&self, name: &str, password: &str) -> Result<User, AppError> {
        let name = UserName::parse(name)?;
        check_new_password(password)?;
        let password_hash = self.hasher.hash_new(password.to_owned()).await?;
        // The unique index on lower(name) is the one arbiter of "taken":
        // checking first and inserting after would race with another sign-up.
        let inserted = sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (name, password_hash) VALUES ($1, $2) \
             RETURNING id, name, password_hash, created_at",
        )
        .bind(name.as_str())
        .bind(password_hash)
        .fetch_one(&self.db)
        .await;
        match inserted {
            Ok(row) => Ok(row.into()),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(AuthError::NameTaken {
                    name: name.as_str().to_owned(),
                }
                .into())
            }
            Err(error) => Err(internal(error)),
        }
    }

    /// The account with this name and password. An unknown name and a
    /// wrong password give the same error, after the same amount of work.
    ///
    /// A password longer than any account may have is wrong without being
    /// hashed: it cannot cost the server a hash. `turns`: which of the
    /// hasher's turns it may take (a log-in from a network the account
    /// logged in from lately may take one kept for those).
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
        turns: Turns,
    ) -> Result<User, AppError> {
        if password.chars().count() > MAX_PASSWORD_LEN {
            return Err(AuthError::WrongCredentials.into());
        }
        let row = match UserName::parse(name) {
            Ok(name) => self.find_row_by_name(&name).await?,
            Err(_) => None,
        };
        let hash = row.as_ref().map(|row| row.password_hash.clone());
        if self.hasher.verify(password.to_owned(), hash, turns).await? {
            Ok(row.map(User::from).ok_or(AuthError::WrongCredentials)?)
        } else {
            Err(AuthError::WrongCredentials.into())
        }
    }

    /// The account with this id, if it still exists.
    pub async fn find(&self, id: UserId) -> Result<Option<User>, AppError> {
        sqlx::query_as::<_, UserRow>(
            "SELECT id, name, password_hash, created_at FROM users WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.db)
        .await
        .map(|row| row.map(User::from))
        .map_err(internal)
    }

    /// The account with this name (whatever its case), if any.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<User>, AppError> {
        match UserName::parse(name) {
            Ok(name) => Ok(self.find_row_by_name(&name).await?.map(User::from)),
            Err(_) => Ok(None),
        }
    }

    /// The `count` newest accounts, newest first.
    pub async fn newest(&self, count: i64) -> Result<Vec<User>, AppError> {
        let rows = sqlx::query_as::<_, (i64, String, i64)>(
            "SELECT id, name, created_at FROM users ORDER BY id DESC LIMIT $1",
        )
        .bind(count)
        .fetch_all(&self.db)
        .await
        .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at)| User {
                id: UserId(id),
                name,
                created_at,
            })
            .collect())
    }

    /// How many accounts were created in `[start, end)` (seconds since the
    /// epoch).
    pub async fn count_created(&self, start: i64, end: i64) -> Result<i64, AppError> {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM users WHERE created_at >= $1 AND created_at < $2",
        )
        .bind(start)
        .bind(end)
        .fetch_one(&self.db)
        .await
        .map_err(internal)
    }

    async fn find_row_by_name(&self, name: &UserName) -> Result<Option<UserRow>, AppError> {
        sqlx::query_as::<_, UserRow>(
            "SELECT id, name, password_hash, created_at FROM users WHERE lower(name) = lower($1)",
        )
        .bind(name.as_str())
        .fetch_optional(&self.db)
        .await
        .map_err(internal)
    }
}

fn internal(error: sqlx::Error) -> AppError {
    log_database_error(error, "a query on the users table")
}
