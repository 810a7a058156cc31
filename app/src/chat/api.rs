//! The chat's server functions. Those that emit use
//! [`realtime::RealtimeClient`], so the server knows which tab is calling.

use leptos::prelude::*;

use super::{Message, RoomHistory, RoomPage, RoomSummary};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::limits::Action;

/// A page of rooms, newest first: the newest, or those older than the room
/// `before`.
#[server(prefix = "/api", endpoint = "chat/rooms")]
pub async fn list_rooms(before: Option<i64>) -> Result<RoomPage, AppError> {
    // Read before the rooms: a room created in between is then both listed
    // and replayed (the list shows it once), never neither.
    let position = server::events()?
        .position(&realtime::Stream::Everyone)
        .await;
    let page = server::chat()?.rooms(before, super::ROOM_PAGE_LEN).await?;
    Ok(RoomPage { position, ..page })
}

/// Creates a room (logged in only), tells every open room list, and sends
/// the browser to the new room.
#[server(prefix = "/api", endpoint = "chat/create_room", client = realtime::RealtimeClient)]
pub async fn create_room(name: String) -> Result<RoomSummary, AppError> {
    use super::{ROOM_NAME, RoomCreated};
    let user =
        server::acting_user_on_network(Action::CreateRoom, Action::CreateRoomPerAddress).await?;
    let name = ROOM_NAME.check(&name)?;
    let room = server::chat()?.create_room(&name, user.id).await?;
    tracing::info!(room = room.id, name = %room.name, by = %user.id, "room created");
    server::events()?.emit(&RoomCreated(room.clone()))?;
    leptos_axum::redirect(&format!("/rooms/{}", room.id));
    Ok(room)
}

/// A room and its latest messages (logged in only).
#[server(prefix = "/api", endpoint = "chat/room")]
pub async fn open_room(id: i64) -> Result<RoomHistory, AppError> {
    let viewer = server::logged_in_user().await?.id;
    let chat = server::chat()?;
    // Read before the room and its messages (see `RoomHistory::position`):
    // a rename or a message in between is then both in the data and
    // replayed (shown once), never in neither.
    let stream = realtime::Stream::room(&super::ChatRoom(id));
    let position = server::events()?.position(&stream).await;
    let room = server::existing_room(&chat, id).await?;
    let messages = chat.messages(id, super::HISTORY_LEN).await?;
    Ok(RoomHistory {
        room,
        messages,
        viewer,
        position,
    })
}

/// Posts a message. Everyone else in the room receives it live; the
/// calling tab adds the message this returns, so it shows exactly once.
#[server(prefix = "/api", endpoint = "chat/post", client = realtime::RealtimeClient)]
pub async fn post_message(room_id: i64, body: String) -> Result<Message, AppError> {
    use super::{ChatRoom, MESSAGE, MessagePosted};
    let user = server::acting_user_on_network(Action::Post, Action::PostPerAddress).await?;
    let body = MESSAGE.check(&body)?;
    let chat = server::chat()?;
    server::existing_room(&chat, room_id).await?;
    let message = chat.post(room_id, &user, &body).await?;
    server::events()?
        .to_room(&ChatRoom(room_id))
        .except_caller()
        .emit(&MessagePosted(message.clone()))?;
    Ok(message)
}

/// Tells the others in the room that the caller is typing. Nothing is
/// stored.
#[server(prefix = "/api", endpoint = "chat/typing", client = realtime::RealtimeClient)]
pub async fn report_typing(room_id: i64) -> Result<(), AppError> {
    use super::{ChatRoom, Typing};
    let user = server::acting_user_on_network(Action::Typing, Action::TypingPerAddress).await?;
    server::events()?
        .to_room(&ChatRoom(room_id))
        .except_caller()
        .emit(&Typing {
            room_id,
            user: user.id,
            name: user.name,
        })?;
    Ok(())
}

/// Renames a room (its creator only). The room's members receive the new
/// public view, unless the name is unchanged.
#[server(prefix = "/api", endpoint = "chat/rename", client = realtime::RealtimeClient)]
pub async fn rename_room(room_id: i64, name: String) -> Result<RoomSummary, AppError> {
    use super::{ROOM_NAME, RoomRenamed};
    let user = server::acting_user_on_network(Action::Rename, Action::RenamePerAddress).await?;
    let name = ROOM_NAME.check(&name)?;
    let (room, old_name) = server::chat()?.rename_room(room_id, &name, user.id).await?;
    server::events()?.broadcast(&RoomRenamed {
        room: room.clone(),
        old_name,
        renamed_by: user.id,
    })?;
    Ok(room)
}

#[cfg(feature = "ssr")]
mod server {
    use realtime::server::Hub;

    pub use crate::auth::guard::{acting_user_on_network, logged_in_user};
    use crate::{
        AppContext,
        chat::{RoomSummary, store::Chat},
        error::AppError,
    };

    pub fn chat() -> Result<Chat, AppError> {
        Ok(AppContext::expect()?.chat)
    }

    pub fn events() -> Result<Hub, AppError> {
        Ok(AppContext::expect()?.events)
    }

    pub async fn existing_room(chat: &Chat, id: i64) -> Result<RoomSummary, AppError> {
        chat.room(id)
            .await?
            .ok_or_else(|| AppError::NotFound("There is no such room.".into()))
    }
}
