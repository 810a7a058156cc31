//! The joins a connection asks for: room rules (a database query, say) run
//! beside the connection's loop, a few at a time, so writing goes on while
//! they decide; more joins wait their turn, in order. A `leave` cancels
//! the joins of its room still waiting or deciding: a join that ended after
//! it would put the tab in a room it left, and would answer a later join's
//! `since` as if the tab had been a member all along (nothing replayed). A
//! rule already running runs to its end, in its turn (its query would run
//! on in the database anyway), and its answer is dropped.

use std::{
    collections::VecDeque,
    future::Future,
    num::NonZeroU32,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures_util::stream::FuturesUnordered;
use tokio::{sync::Notify, time::timeout};

use super::super::{Hub, Refusal, pace::Actor, registry::JoinError};
use crate::{ConnectionId, Position, RoomName, Stream, UserId, protocol::ControlFrame};

/// Room rules running at once for one connection; more joins wait their
/// turn, in order.
pub(crate) const RULES_AT_ONCE: usize = 4;
/// Reads of the shared history (Redis) one actor's joins may cause at
/// once, all its connections together; then one a second. A user's tabs
/// re-join their few rooms after a reconnect, or open a few new ones, and
/// most of those are served from this process's mirror; a script joining
/// room after room, over as many sockets as it may open, costs Redis one
/// read a second.
pub(crate) const SHARED_READS_BURST: NonZeroU32 = NonZeroU32::new(32).unwrap();
/// Room rules one actor's joins may run at once, all its connections
/// together; then [`RULE_CHECKS_PER_SECOND`]. A rule may ask the
/// application's database: a script that joins room after room (or the
/// same room again and again) over its sockets waits its turn instead of
/// spending a query each time.
pub(crate) const RULE_CHECKS_BURST: NonZeroU32 = NonZeroU32::new(128).unwrap();
/// Room rules one actor's joins may run a second, past
/// [`RULE_CHECKS_BURST`].
pub(crate) const RULE_CHECKS_PER_SECOND: NonZeroU32 = NonZeroU32::new(20).unwrap();

/// A join deciding: its serial number, once it is done.
type Deciding<'h> = Pin<Box<dyn Future<Output = u64> + Send + 'h>>;

/// The joins a connection asked for: a few rules running beside the loop,
/// the rest waiting their turn.
pub(super) struct Joins<'h> {
    hub: &'h Hub,
    id: ConnectionId,
    user: Option<UserId>,
    pub running: FuturesUnordered<Deciding<'h>>,
    /// The room of each join in `running`, with its serial number and
    /// whether the tab left the room since (at most [`RULES_AT_ONCE`]: a
    /// list).
    deciding: Vec<(RoomName, u64, Arc<Leaving>)>,
    /// The serial number of the next join to run.
    next_serial: u64,
    /// Rooms to join, each with the position to recover from, if any.
    waiting: VecDeque<(RoomName, Option<Position>)>,
    /// Whose budget of shared reads (the hub's `shared_reads`) this
    /// connection's joins spend, when this process's mirror does not hold
    /// what they need ([`SHARED_READS_BURST`]). Past it, a recovery gets a
    /// discontinuity instead, and a join without a position waits its
    /// turn.
    actor: Actor,
}

impl<'h> Joins<'h> {
    pub fn new(hub: &'h Hub, id: ConnectionId, user: Option<UserId>, actor: Option<Actor>) -> Self {
        Self {
            hub,
            id,
            user,
            running: FuturesUnordered::new(),
            deciding: Vec::new(),
            next_serial: 0,
            waiting: VecDeque::new(),
            actor: actor.unwrap_or(Actor::Connection(id)),
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

    /// The join `serial` in `running` ended: it is no longer deciding, and
    /// the next waiting join may start.
    pub fn ended(&mut self, serial: u64) {
        self.deciding.retain(|(_, deciding, _)| *deciding != serial);
        self.start_waiting();
    }

    /// The tab left `room`: its joins still waiting are dropped, and those
    /// deciding end unanswered, without joining.
    pub fn cancel(&mut self, room: &RoomName) {
        self.waiting.retain(|(waiting, _)| waiting != room);
        for (deciding, _, left) in &self.deciding {
            if deciding == room {
                left.leave();
            }
        }
    }

    fn start_waiting(&mut self) {
        while self.running.len() < RULES_AT_ONCE
            && let Some((room, since)) = self.waiting.pop_front()
        {
            let serial = self.next_serial;
            self.next_serial += 1;
            let left = Arc::new(Leaving::default());
            self.deciding
                .push((room.clone(), serial, Arc::clone(&left)));
            let asked = Asked {
                hub: self.hub,
                connection: self.id,
                user: self.user,
                actor: self.actor,
                left,
            };
            let join = decide(asked, room, since);
            self.running.push(Box::pin(async move {
                join.await;
                serial
            }));
        }
    }
}

/// Whether the tab left a room while its join decided, and a way to stop
/// waiting when it does.
#[derive(Default)]
struct Leaving {
    left: AtomicBool,
    notify: Notify,
}

impl Leaving {
    fn leave(&self) {
        self.left.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    fn has_left(&self) -> bool {
        self.left.load(Ordering::Relaxed)
    }

    /// Waits for `work`, unless the tab leaves the room first (`None`).
    async fn unless_left<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let left = self.notify.notified();
        tokio::pin!(left);
        // Listening before the flag is read: a leave in between is heard.
        left.as_mut().enable();
        if self.has_left() {
            return None;
        }
        tokio::select! {
            biased;
            () = left => None,
            done = work => Some(done),
        }
    }
}

/// Who asks to join a room, and whether the tab left it since.
struct Asked<'h> {
    hub: &'h Hub,
    connection: ConnectionId,
    user: Option<UserId>,
    actor: Actor,
    left: Arc<Leaving>,
}

impl Asked<'_> {
    /// Whether the tab left the room while its rule decided: then nothing
    /// is joined, read or answered.
    fn has_left(&self) -> bool {
        self.left.has_left()
    }
}

/// A browser asks to join `room`: the rule of the room's kind decides,
/// within [`super::super::HubConfig::authorize_timeout`]. Answered with
/// `joined` (after what followed `since` in the room) or `refused` (and
/// nothing replayed). What this process's mirror does not hold is read in
/// the shared history within its actor's budget: past it, a recovery gets
/// a discontinuity, and a join without a position waits.
async fn decide(asked: Asked<'_>, room: RoomName, since: Option<Position>) {
    let Asked {
        hub,
        connection,
        user,
        actor,
        ..
    } = asked;
    let config = hub.config();
    // The actor's turn first (an answer late by its wait), for as long as
    // a rule may take at most; a tab that leaves meanwhile spends nothing.
    let turn = hub.inner.rule_checks.until_ready(actor);
    match asked
        .left
        .unless_left(timeout(config.authorize_timeout, turn))
        .await
    {
        None => return,
        Some(Err(_)) => {
            refuse(
                hub,
                connection,
                &room,
                "Too many joins: try again in a moment.",
            );
            return;
        }
        Some(Ok(())) => {}
    }
    let rule = hub.inner.join_rules.authorize(&room, user, connection);
    let decision = timeout(config.authorize_timeout, rule)
        .await
        .unwrap_or_else(|_| Err(Refusal::new("The server took too long to decide.")));
    if asked.has_left() {
        return;
    }
    let refusal = match decision {
        Ok(()) => {
            let stream = Stream::Room(room.clone());
            let streams = &hub.inner.streams;
            // Heard before it is read: nothing published meanwhile is lost.
            streams.follow(&stream).await;
            let reads = &hub.inner.shared_reads;
            let may_read = streams.must_read(&stream, since)
                && match since {
                    Some(_) => reads.check(actor).is_ok(),
                    // Without a position to tell, the tab could not know
                    // what it missed before its first event.
                    None => match asked.left.unless_left(reads.until_ready(actor)).await {
                        Some(()) => true,
                        None => return,
                    },
                };
            let fetched = if may_read {
                let mut fetched = streams.fetch([(stream.clone(), since)]).await;
                fetched.remove(&stream)
            } else {
                None
            };
            // No await between this and joining: a `leave` is handled by
            // the same task.
            if asked.has_left() {
                return;
            }
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
