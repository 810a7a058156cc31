//! The joins a connection asks for: room rules (a database query, say) run
//! beside the connection's loop, a few at a time, so writing goes on while
//! they decide; more joins wait their turn, in order.

use std::{collections::VecDeque, future::Future, num::NonZeroU32, pin::Pin};

use futures_util::stream::FuturesUnordered;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::super::Hub;
use crate::{ConnectionId, Position, RoomName, UserId};

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
            self.hub
                .refuse_join(self.id, &room, "Too many joins at once.");
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
            let join = self
                .hub
                .request_join(self.id, self.user, room, since, may_read);
            self.running.push(Box::pin(join));
        }
    }
}
