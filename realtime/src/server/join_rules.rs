//! The join-rule registry: who may join which kind of room.
//!
//! The application gives one rule per kind of room
//! ([`super::HubBuilder::room`]); a browser's `join` runs the rule of the
//! room's kind (`membership.rs`). A kind without a rule, or a key the kind
//! does not accept, is refused: every room a browser is in has passed a
//! rule the application wrote.

use std::{collections::HashMap, fmt, future::Future, pin::Pin, sync::Arc};

use crate::{ConnectionId, Room, RoomName, UserId};

/// A connection asks to join a room of kind `R`.
#[derive(Clone, Debug)]
pub struct JoinRequest<R> {
    pub room: R,
    /// The connection's user, `None` for a visitor.
    pub user: Option<UserId>,
    pub connection: ConnectionId,
}

/// Why a join was refused, in words for the person at the keyboard. The
/// browser receives it in the `refused` frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A rule for one kind, taking the room's key (not yet parsed).
type Rule =
    Arc<dyn Fn(&str, Option<UserId>, ConnectionId) -> BoxFuture<Result<(), Refusal>> + Send + Sync>;

/// The rule of each kind of room.
#[derive(Default)]
pub(crate) struct JoinRules {
    by_kind: HashMap<&'static str, Rule>,
}

impl JoinRules {
    pub fn add<R, F, Fut>(&mut self, authorize: F)
    where
        R: Room,
        F: Fn(JoinRequest<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        let rule: Rule = Arc::new(move |key, user, connection| match R::from_key(key) {
            // Only a room's own key names it: `chat:007` is not `chat:7`,
            // and would otherwise be a shadow room of its own.
            Some(room) if room.key() == key => Box::pin(authorize(JoinRequest {
                room,
                user,
                connection,
            })),
            _ => Box::pin(async { Err(no_such_room()) }),
        });
        self.by_kind.insert(R::KIND, rule);
    }

    /// Runs the rule for the room's kind. A kind without a rule, or a key
    /// the kind does not accept, is refused.
    pub fn authorize(
        &self,
        room: &RoomName,
        user: Option<UserId>,
        connection: ConnectionId,
    ) -> BoxFuture<Result<(), Refusal>> {
        let rule = room
            .split()
            .and_then(|(kind, key)| Some((self.by_kind.get(kind)?, key)));
        match rule {
            Some((rule, key)) => rule(key, user, connection),
            None => Box::pin(async { Err(no_such_room()) }),
        }
    }
}

fn no_such_room() -> Refusal {
    Refusal::new("There is no such room.")
}
