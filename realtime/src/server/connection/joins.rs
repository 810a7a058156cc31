//! The joins a connection asks for: room rules (a database query, say) run
//! beside the connection's loop, a few at a time, so writing goes on while
//! they decide; more joins wait their turn, in order.

use std::{collections::VecDeque, future::Future, num::NonZeroU32, pin::Pin};

use futures_util::stream::FuturesUnordered;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::time::timeout;

use super::super::{Hub, Refusal, registry::JoinError};
use crate::{ConnectionId, Position, RoomName, Stream, UserId, protocol::ControlFrame};

/// Room rules running at once for one connection; more joins wait their
/// turn, in order.
pub(crate) const RULES_AT_ONCE: usize = 4;
/// Joins that may read the shared history at once (then one a second).
pub(crate) const SHARED_RECOVERIES_BURST: NonZeroU32 = NonZeroU32::new(16).unwrap();

/// The joins a connection asked for: a few rules running beside the loop,
/// the rest waiting their turn.
pub(super) struct Joins<'h> {
    hub: &'h Hub,
    id: ConnectionId,
    user: Option<UserId>,
    pub running: FuturesUnordered<Pin<Box<dyn Future<Output = ()> + Send + 'h>>>,
    /// Rooms to join, each with the position to recover from, if any.
    waiting: VecDeque<(RoomName, Option<Position>)>,
    /// Recoveries this connection may have read from Redis, when this
    /// process does not hold them: a tab re-joins its few rooms after a
    /// reconnect; a script asking for old positions in room after room
    /// gets discontinuities instead (`ask` turns its reads off).
    reads: DefaultDirectRateLimiter,
}

impl<'h> Joins<'h> {
    pub fn new(hub: &'h Hub, id: ConnectionId, user: Option<UserId>) -> Self {
        Self {
            hub,
            id,
            user,
            running: FuturesUnordered::new(),
            waiting: VecDeque::new(),
            reads: RateLimiter::direct(
                Quota::per_second(NonZeroU32::MIN).allow_burst(SHARED_RECOVERIES_BURST),
            ),
        }
    }

    /// Asks to join `room`: its rule runs now, or once a turn is free. A
    /// connection may not queue more joins than it may be in rooms.
    pub fn ask(&mut self, room: RoomName, since: Option<Position>) {
        if self.waiting.len() >= self.hub.config().max_rooms_per_connection {
            refuse(self.hub, self.id, &room, "Too many joins at once.");
            return;
        }
        self.waiting.push_back((room, since));
        self.start_waiting();
    }

    pub fn start_waiting(&mut self) {
        while self.running.len() < RULES_AT_ONCE
            && let Some((room, since)) = self.waiting.pop_front()
        {
            let may_read = since.is_some() && self.reads.check().is_ok();
            let join = decide(self.hub, self.id, self.user, room, since, may_read);
            self.running.push(Box::pin(join));
        }
    }
}

/// A browser asks to join `room`: the rule of the room's kind decides,
/// within [`super::super::HubConfig::authorize_timeout`]. Answered with
/// `joined` (after what followed `since` in the room) or `refused` (and
/// nothing replayed). The shared history is read for a recovery this
/// process cannot serve only if the connection `may_read`; otherwise the
/// tab gets a discontinuity.
async fn decide(
    hub: &Hub,
    connection: ConnectionId,
    user: Option<UserId>,
    room: RoomName,
    since: Option<Position>,
    may_read: bool,
) {
    let config = hub.config();
    let rule = hub.inner.join_rules.authorize(&room, user, connection);
    let decision = timeout(config.authorize_timeout, rule)
        .await
        .unwrap_or_else(|_| Err(Refusal::new("The server took too long to decide.")));
    let refusal = match decision {
        Ok(()) => {
            let stream = Stream::Room(room.clone());
            let fetched = if may_read || since.is_none() {
                let mut fetched = hub.inner.streams.fetch([(stream.clone(), since)]).await;
                fetched.remove(&stream)
            } else {
                None
            };
            match hub.add_to_room(connection, &room, since, fetched) {
                Ok(()) | Err(JoinError::Gone) => return,
                Err(JoinError::TooManyRooms) => format!(
                    "You can be in at most {} rooms at once.",
                    config.max_rooms_per_connection
                ),
            }
        }
        Err(refusal) => refusal.0,
    };
    refuse(hub, connection, &room, &refusal);
}

/// Tells a browser it may not join `room`, and why.
fn refuse(hub: &Hub, connection: ConnectionId, room: &RoomName, reason: &str) {
    tracing::debug!(%connection, %room, %reason, "join refused");
    hub.send_control(connection, &ControlFrame::Refused { room, reason });
}
