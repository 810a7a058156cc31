//! Events for everyone, and for one user.
//!
//! - Announcements, the seed documents' own example: a logged-in user
//!   broadcasts a [`SomethingHappened`] to every open tab, logged in or not.
//! - Notifications: a logged-in user sends a [`Notification`] to another
//!   user by name; it appears in every tab of that user, and nobody else's.

use leptos::prelude::*;
use realtime::{Position, Stream};
use serde::{Deserialize, Serialize};

use crate::{
    error::AppError,
    input::{Characters, TextRule},
};

/// The longest announcement, in characters.
pub const MAX_MESSAGE_LEN: usize = 500;

/// Something happened that every open tab should hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SomethingHappened {
    #[serde(default = "default_code")]
    pub code: i64,
    pub message: String,
    #[serde(rename = "isError", default)]
    pub is_error: bool,
    /// Who announced it: set by the server from the caller's account
    /// (whatever the caller sent), shown with the message, so that no one
    /// can pass a notice off as the site's own. `None` for the server's
    /// own announcements (a background job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

fn default_code() -> i64 {
    1
}

impl realtime::Event for SomethingHappened {
    const NAME: &'static str = "SomethingHappened";
}

impl SomethingHappened {
    /// An announcement with the default code (1) that is not an error.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            code: default_code(),
            message: message.into(),
            is_error: false,
            author: None,
        }
    }
}

/// What an announcement's message must be.
pub const ANNOUNCEMENT: TextRule = TextRule {
    what: "Announcements",
    max_chars: MAX_MESSAGE_LEN,
    when_empty: "Write a message first.",
    characters: Characters::Prose,
};

/// Emits `event` to every open tab, with its message trimmed and its
/// author the caller. The calling tab gets it too: an announcement is for
/// everyone. Logged-in users only, at a limited rate, and logged. Answers
/// once the announcement is kept where tabs recover from (Redis, with
/// several processes): a tab that reconnects to any process gets it, even
/// if this one stops right after.
#[server(prefix = "/api", endpoint = "events/broadcast", client = realtime::RealtimeClient)]
pub async fn broadcast_event(event: SomethingHappened) -> Result<(), AppError> {
    use crate::limits::Action;
    let user =
        crate::auth::guard::acting_user_on_network(Action::Announce, Action::AnnouncePerAddress)
            .await?;
    let event = SomethingHappened {
        message: ANNOUNCEMENT.check(&event.message)?,
        author: Some(user.name),
        ..event
    };
    tracing::info!(
        user = %user.id,
        message = %event.message,
        is_error = event.is_error,
        "announced"
    );
    crate::AppContext::expect()?
        .events
        .target(realtime::server::Target::everyone())
        .emit_placed(&event)
        .await?;
    Ok(())
}

/// The longest notification, in characters.
pub const MAX_NOTIFICATION_LEN: usize = 500;

/// A message for one user, from another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub from: String,
    pub text: String,
}

impl realtime::Event for Notification {
    const NAME: &'static str = "notification";
}

/// What a notification's text must be.
pub const NOTIFICATION: TextRule = TextRule {
    what: "Notifications",
    max_chars: MAX_NOTIFICATION_LEN,
    when_empty: "Write a message first.",
    characters: Characters::Prose,
};

/// Sends a notification to every tab of the user called `to` (logged in
/// only). The answer is the same whether or not someone has that name, so
/// that it cannot be used to find out who has an account; limited per
/// sender, per sender's network, per sender and recipient, and per
/// recipient.
#[server(prefix = "/api", endpoint = "events/notify", client = realtime::RealtimeClient)]
pub async fn notify(to: String, text: String) -> Result<(), AppError> {
    use crate::limits::Action;
    let sender =
        crate::auth::guard::acting_user_on_network(Action::Notify, Action::NotifyPerAddress)
            .await?;
    let context = crate::AppContext::expect()?;
    let text = NOTIFICATION.check(&text)?;
    // A name no account can have reaches no one, and is not counted: it
    // would only fill the limiter's memory.
    let Ok(name) = crate::auth::UserName::parse(&to) else {
        return Ok(());
    };
    // The sender's share first: a sender past it spends nothing of what
    // the name may get from everyone.
    context.limits.by_recipient(
        Action::NotifyPerPair,
        &format!("{}>{}", sender.id, name.as_str()),
    )?;
    context
        .limits
        .by_recipient(Action::NotifyPerRecipient, name.as_str())?;
    if let Some(recipient) = context.users.find_by_name(name.as_str()).await? {
        context.events.to(recipient.id).emit(&Notification {
            from: sender.name,
            text,
        })?;
    }
    Ok(())
}

/// Where the streams behind the notices stand (everyone's, and the
/// caller's own when logged in): a page rendered now shows the notices
/// from there on, so one sent before its socket opens still arrives.
/// `None` where the server could not say (its history out of reach): the
/// tab then counts what it may have missed as missed.
#[server(prefix = "/api", endpoint = "events/positions")]
pub async fn notice_positions() -> Result<Vec<(Stream, Option<Position>)>, AppError> {
    let events = crate::AppContext::expect()?.events;
    // A session that has just expired counts as a visitor's here.
    let user = crate::auth::guard::request_user().await.ok().flatten();
    let streams = std::iter::once(Stream::Everyone).chain(user.map(|user| Stream::User(user.id)));
    let mut positions = Vec::new();
    for stream in streams {
        let position = events.position(&stream).await;
        positions.push((stream, position));
    }
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_matches_the_seed_example() {
        let event: SomethingHappened =
            serde_json::from_str(r#"{"message":"John created an account!"}"#).unwrap();
        assert_eq!(event, SomethingHappened::new("John created an account!"));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": 1, "message": "John created an account!", "isError": false})
        );
    }
}
