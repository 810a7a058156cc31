//! The `rooms` and `messages` tables.

use realtime::UserId;
use sqlx::{AnyPool, FromRow};

use super::{Message, RoomPage, RoomSummary};
use crate::{
    auth::User,
    error::{AppError, log_database_error},
};

#[derive(FromRow)]
struct RoomRow {
    id: i64,
    name: String,
    created_by: i64,
    created_at: i64,
}

impl From<RoomRow> for RoomSummary {
    fn from(row: RoomRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_by: UserId(row.created_by),
            created_at: row.created_at,
        }
    }
}

#[derive(FromRow)]
struct MessageRow {
    id: i64,
    room_id: i64,
    author_id: i64,
    author: String,
    body: String,
    created_at: i64,
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Self {
            id: row.id,
            room_id: row.room_id,
            author_id: UserId(row.author_id),
            author: row.author,
            body: row.body,
            created_at: row.created_at,
        }
    }
}

/// Rooms and messages.
#[derive(Clone, Debug)]
pub struct Chat {
    db: AnyPool,
}

impl Chat {
    pub fn new(db: AnyPool) -> Self {
        Self { db }
    }

    /// A page of rooms, newest first: those older than the room `before`
    /// (from the newest, without it), at most `len`.
    pub async fn rooms(&self, before: Option<i64>, len: usize) -> Result<RoomPage, AppError> {
        let mut rooms: Vec<RoomSummary> = sqlx::query_as::<_, RoomRow>(
            "SELECT id, name, created_by, created_at FROM rooms \
             WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before.unwrap_or(i64::MAX))
        // One more than asked: whether there is a next page.
        .bind(i64::try_from(len).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(&self.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(RoomSummary::from)
        .collect();
        let more = rooms.len() > len;
        rooms.truncate(len);
        Ok(RoomPage {
            rooms,
            more,
            position: None,
        })
    }

    pub async fn room(&self, id: i64) -> Result<Option<RoomSummary>, AppError> {
        sqlx::query_as::<_, RoomRow>(
            "SELECT id, name, created_by, created_at FROM rooms WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map(|row| row.map(RoomSummary::from))
        .map_err(internal)
    }

    /// Creates a room; its name must be free (whatever its case).
    pub async fn create_room(&self, name: &str, by: UserId) -> Result<RoomSummary, AppError> {
        let created = sqlx::query_as::<_, RoomRow>(
            "INSERT INTO rooms (name, name_key, created_by) VALUES ($1, $2, $3) \
             RETURNING id, name, created_by, created_at",
        )
        .bind(name)
        .bind(name_key(name))
        .bind(by.0)
        .fetch_one(&self.db)
        .await;
        created.map(RoomSummary::from).map_err(taken_or_internal)
    }

    /// Renames a room; only its creator may. Returns the room as it is now
    /// and its old name.
    pub async fn rename_room(
        &self,
        id: i64,
        name: &str,
        by: UserId,
    ) -> Result<(RoomSummary, String), AppError> {
        let room = self
            .room(id)
            .await?
            .ok_or_else(|| AppError::NotFound("There is no such room.".into()))?;
        if room.created_by != by {
            return Err(AppError::Forbidden(
                "Only the room's creator can rename it.".into(),
            ));
        }
        if room.name == name {
            return Ok((room.clone(), room.name));
        }
        sqlx::query("UPDATE rooms SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name)
            .bind(name_key(name))
            .bind(id)
            .execute(&self.db)
            .await
            .map_err(taken_or_internal)?;
        let old_name = room.name.clone();
        Ok((
            RoomSummary {
                name: name.to_owned(),
                ..room
            },
            old_name,
        ))
    }

    /// The room's latest `limit` messages, oldest first.
    pub async fn messages(&self, room: i64, limit: i64) -> Result<Vec<Message>, AppError> {
        let mut messages: Vec<Message> = sqlx::query_as::<_, MessageRow>(
            "SELECT m.id, m.room_id, m.author_id, u.name AS author, m.body, m.created_at \
             FROM messages m JOIN users u ON u.id = m.author_id \
             WHERE m.room_id = $1 ORDER BY m.id DESC LIMIT $2",
        )
        .bind(room)
        .bind(limit)
        .fetch_all(&self.db)
        .await
        .map_err(internal)?
        .into_iter()
        .map(Message::from)
        .collect();
        messages.reverse();
        Ok(messages)
    }

    /// Stores a message.
    pub async fn post(&self, room: i64, author: &User, body: &str) -> Result<Message, AppError> {
        let (id, created_at): (i64, i64) = sqlx::query_as(
            "INSERT INTO messages (room_id, author_id, body) VALUES ($1, $2, $3) \
             RETURNING id, created_at",
        )
        .bind(room)
        .bind(author.id.0)
        .bind(body)
        .fetch_one(&self.db)
        .await
        .map_err(internal)?;
        Ok(Message {
            id,
            room_id: room,
            author_id: author.id,
            author: author.name.clone(),
            body: body.to_owned(),
            created_at,
        })
    }
}

/// What makes two room names the same name: their Unicode lower case,
/// computed here so that every database compares the same way.
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A name taken already, or an error of ours. The name is not repeated:
/// a link to a form's error (without JavaScript) could otherwise put any
/// words in the site's alert.
fn taken_or_internal(error: sqlx::Error) -> AppError {
    match error {
        sqlx::Error::Database(error) if error.is_unique_violation() => {
            AppError::Invalid("A room with that name already exists.".to_owned())
        }
        error => internal(error),
    }
}

fn internal(error: sqlx::Error) -> AppError {
    log_database_error(error, "a chat query")
}
