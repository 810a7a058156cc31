//! The chat's join rule: who may join a chat room's real-time room.
//! Logged-in users, for rooms that exist. Presence is tracked for chat
//! rooms.

use realtime::server::{HubBuilder, Refusal};
use sqlx::AnyPool;

use super::{ChatRoom, store::Chat};

/// Adds the chat rooms' rule to the hub being built.
pub fn register(builder: HubBuilder, db: AnyPool) -> HubBuilder {
    let chat = Chat::new(db);
    builder
        .room::<ChatRoom, _, _>(move |request| {
            let chat = chat.clone();
            async move {
                if request.user.is_none() {
                    return Err(Refusal::new("Log in to join the conversation."));
                }
                match chat.room(request.room.0).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(Refusal::new("There is no such room.")),
                    Err(_) => Err(Refusal::new("The room cannot be opened right now.")),
                }
            }
        })
        .presence::<ChatRoom>()
}
