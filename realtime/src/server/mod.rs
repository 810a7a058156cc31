//! The server side: one [`Hub`] per process.
//!
//! The hub owns the registry (connection → queue, user → connections,
//! session → connections, room → connections), accepts WebSocket upgrades,
//! runs one task per connection, and delivers events. Emitting works from
//! anywhere: the hub is a cheap, cloneable handle.
//!
//! Layout:
//! - [`Target`]: who an event goes to.
//! - `registry`: the maps, and delivery into the per-connection queues.
//! - `connection`: the task that serves one WebSocket.
//! - `origin`: the `Origin` check on upgrades.
//! - [`Broadcast`]: events that carry their own targets and payload.
//! - [`backplane`]: how several processes act as one hub (Redis pub/sub
//!   with the `redis` feature).

pub mod backplane;
mod broadcast;
mod connection;
mod origin;
mod registry;
mod rooms;
mod target;

use std::{
    collections::HashSet,
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::ws::{Utf8Bytes, WebSocketUpgrade},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use parking_lot::{ReentrantMutex, RwLock};
use thiserror::Error;
use tokio::sync::{Notify, mpsc};

use self::{
    backplane::{Envelope, Link, Message, NodeId},
    registry::{Delivery, Registry},
    rooms::RoomRules,
};
pub use self::{
    broadcast::Broadcast,
    origin::Origins,
    registry::RegistryStats,
    rooms::{JoinRequest, Refusal},
    target::Target,
};
use crate::{ConnectionId, Event, Member, Room, RoomName, UserId, protocol};

/// Limits and settings of a hub. The defaults suit a typical application;
/// `docs/protocol.md` explains each limit.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Largest frame (and message) a browser may send, in bytes. Larger
    /// ones close the connection with code 1009.
    pub max_frame_bytes: usize,
    /// How many rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// How many frames may wait in one connection's outgoing queue. A
    /// connection whose queue is full is closed with code 4008.
    pub queue_capacity: usize,
    /// Size of each connection's read buffer (tungstenite's default is
    /// 128 KiB, which is most of the memory of an idle connection).
    pub read_buffer_bytes: usize,
    /// How often the server pings an idle connection, so dead ones are
    /// noticed and proxies keep live ones open.
    pub ping_interval: Duration,
    /// How long a room's authorisation rule may take before the join is
    /// refused.
    pub authorize_timeout: Duration,
    /// Which pages may open a connection.
    pub origins: Origins,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_rooms_per_connection: 64,
            queue_capacity: 256,
            read_buffer_bytes: 1024,
            ping_interval: Duration::from_secs(30),
            authorize_timeout: Duration::from_secs(10),
            origins: Origins::SameOrigin,
        }
    }
}

/// Who a connection belongs to, decided by the application from the
/// session on the upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The logged-in user, or `None` for a visitor.
    pub user: Option<UserId>,
    /// The session the connection was opened with, so ending the session
    /// can close it ([`Hub::disconnect_session`]).
    pub session: Option<SessionKey>,
    /// The user's name as other users see it, for [`crate::Presence`].
    pub name: Option<String>,
}

impl Identity {
    /// A visitor's connection.
    pub fn anonymous() -> Self {
        Self::default()
    }
}

/// An opaque session identifier (the application's session id, as text).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(Arc<str>);

impl From<&str> for SessionKey {
    fn from(key: &str) -> Self {
        Self(key.into())
    }
}

impl From<String> for SessionKey {
    fn from(key: String) -> Self {
        Self(key.into())
    }
}

// Serialised for the backplane, which closes a session's connections on
// every process.
impl serde::Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl fmt::Debug for SessionKey {
    // Session ids are secrets: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The server is shutting down.
    GoingAway,
    /// The session ended (log-out).
    SessionEnded,
    /// The connection's outgoing queue overflowed.
    TooSlow,
}

impl CloseReason {
    /// The WebSocket close code and reason text sent to the browser.
    pub fn code_and_text(self) -> (u16, &'static str) {
        match self {
            Self::GoingAway => (protocol::close::GOING_AWAY, "server shutting down"),
            Self::SessionEnded => (protocol::close::SESSION_ENDED, "session ended"),
            Self::TooSlow => (protocol::close::TOO_SLOW, "too slow to keep up"),
        }
    }
}

/// A request to a connection's task to close. The first reason wins.
#[derive(Default)]
pub(crate) struct Control {
    notify: Notify,
    reason: OnceLock<CloseReason>,
}

impl Control {
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        // A stored permit: the task sees it even if it is not waiting yet.
        self.notify.notify_one();
    }

    pub async fn closed(&self) -> CloseReason {
        self.notify.notified().await;
        self.reason.get().copied().unwrap_or(CloseReason::GoingAway)
    }
}

/// An event could not be emitted.
#[derive(Debug, Error)]
pub enum EmitError {
    /// serde could not encode the event (a map with non-string keys, say).
    #[error("could not encode event {event}: {source}")]
    Encode {
        event: &'static str,
        source: serde_json::Error,
    },
}

/// The real-time hub of one process. Clone it freely: clones share one
/// registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    config: HubConfig,
    registry: RwLock<Registry>,
    rooms: RoomRules,
    /// Kinds of room whose presence is tracked.
    presence: HashSet<&'static str>,
    /// The other processes, once a backplane is attached.
    link: OnceLock<Arc<Link>>,
    /// Held while a presence list is computed and sent or published, so
    /// lists go out in the order they were computed: a list computed before
    /// a change can never overtake one computed after it. Reentrant: sending
    /// may disconnect a slow connection, whose departure is presence too.
    presence_order: ReentrantMutex<()>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Hub`]: its limits and the authorisation rule of each kind of
/// room.
pub struct HubBuilder {
    config: HubConfig,
    rooms: RoomRules,
    presence: HashSet<&'static str>,
}

impl HubBuilder {
    pub fn config(mut self, config: HubConfig) -> Self {
        self.config = config;
        self
    }

    /// Lets connections join rooms of kind `R` when `authorize` agrees.
    ///
    /// Joins of kinds without a rule are refused, so every room a browser
    /// can join has passed a rule the application wrote.
    pub fn room<R, F, Fut>(mut self, authorize: F) -> Self
    where
        R: Room,
        F: Fn(JoinRequest<R>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refusal>> + Send + 'static,
    {
        self.rooms.add::<R, F, Fut>(authorize);
        self
    }

    /// Tracks who is in rooms of kind `R`: their members receive
    /// [`crate::Presence`] events (see [`crate::presence`]).
    pub fn presence<R: Room>(mut self) -> Self {
        self.presence.insert(R::KIND);
        self
    }

    pub fn build(self) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config: self.config,
                registry: RwLock::new(Registry::default()),
                rooms: self.rooms,
                presence: self.presence,
                link: OnceLock::new(),
                presence_order: ReentrantMutex::new(()),
            }),
        }
    }
}

impl Hub {
    pub fn builder() -> HubBuilder {
        HubBuilder {
            config: HubConfig::default(),
            rooms: RoomRules::default(),
            presence: HashSet::new(),
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Answers a WebSocket upgrade request: checks its `Origin` (403 when
    /// refused), then serves the connection as `identity` until it closes.
    pub fn accept(
        &self,
        upgrade: WebSocketUpgrade,
        headers: &HeaderMap,
        identity: Identity,
    ) -> Response {
        if let Err(refused) = self.inner.config.origins.check(headers) {
            tracing::warn!(origin = %refused, "WebSocket upgrade refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
        let config = &self.inner.config;
        let hub = self.clone();
        upgrade
            .read_buffer_size(config.read_buffer_bytes)
            .write_buffer_size(connection::write_buffer_bytes())
            .max_message_size(config.max_frame_bytes)
            .max_frame_size(config.max_frame_bytes)
            .on_upgrade(move |socket| connection::serve(hub, socket, identity))
    }

    // --- Emitting ----------------------------------------------------------

    /// Sends `event` to every connection.
    pub fn emit<E: Event>(&self, event: &E) -> Result<usize, EmitError> {
        self.target(Target::everyone()).emit(event)
    }

    /// Starts an emit to one or more users (every connection of each):
    /// `to(1)`, `to([1, 2, 3])`, `to(vec)`. For any iterator, see
    /// [`Hub::to_users`].
    pub fn to(&self, users: impl IntoUserIds) -> Emit<'_> {
        self.target(Target::users(users.into_user_ids()))
    }

    /// Starts an emit to every connection of each user an iterator yields.
    pub fn to_users<U: Into<UserId>>(&self, users: impl IntoIterator<Item = U>) -> Emit<'_> {
        self.target(Target::users(users))
    }

    /// Starts an emit to the members of a room.
    pub fn to_room<R: Room>(&self, room: &R) -> Emit<'_> {
        self.target(Target::room(room))
    }

    /// Starts an emit to the members of several rooms (each member once).
    pub fn to_rooms<'a, R: Room>(&self, rooms: impl IntoIterator<Item = &'a R>) -> Emit<'_> {
        self.target(Target::rooms(rooms))
    }

    /// Starts an emit to one connection.
    pub fn to_connection(&self, connection: ConnectionId) -> Emit<'_> {
        self.target(Target::connection(connection))
    }

    /// Starts an emit to the connection of the browser tab that called the
    /// current server function (nobody, if the call did not come from a tab
    /// with an open connection).
    pub fn to_caller(&self) -> Emit<'_> {
        match caller() {
            Some(connection) => self.to_connection(connection),
            None => self.target(Target::nobody()),
        }
    }

    /// Starts an emit to everyone except the calling tab's connection.
    pub fn except_caller(&self) -> Emit<'_> {
        self.target(Target::everyone()).except_caller()
    }

    /// Starts an emit to any [`Target`].
    pub fn target(&self, target: Target) -> Emit<'_> {
        Emit { hub: self, target }
    }

    /// Sends a domain event through its hooks: nothing if
    /// [`Broadcast::broadcast_when`] declines, otherwise
    /// [`Broadcast::broadcast_as`] to [`Broadcast::broadcast_on`].
    pub fn broadcast<B: Broadcast>(&self, event: &B) -> Result<usize, EmitError> {
        self.target(Target::nobody()).broadcast(event)
    }

    /// Queues an encoded frame for every recipient on this process and,
    /// when other processes may have recipients too, publishes it once for
    /// them.
    fn deliver_encoded(&self, target: &Target, frame: Utf8Bytes) -> usize {
        if let Some(link) = self.link()
            && !self.only_local_connections(target)
        {
            link.publish(
                &Message::Deliver {
                    target: target.clone(),
                },
                frame.as_str().as_bytes(),
            );
        }
        self.deliver_local(target, &frame)
    }

    /// Whether a target names nothing but connections of this process, so
    /// other processes need not hear of it.
    fn only_local_connections(&self, target: &Target) -> bool {
        target.is_connections_only() && {
            let registry = self.inner.registry.read();
            target.connections.iter().all(|id| registry.contains(*id))
        }
    }

    /// Queues a frame for the recipients on this process.
    fn deliver_local(&self, target: &Target, frame: &Utf8Bytes) -> usize {
        let mut outcome = Delivery::default();
        self.inner
            .registry
            .read()
            .deliver(target, frame, &mut outcome);
        if !outcome.overflowed.is_empty() {
            // Disconnecting takes the write lock, so after the read lock is gone.
            for connection in &outcome.overflowed {
                tracing::warn!(%connection, "disconnecting a connection that cannot keep up");
                self.disconnect(*connection, CloseReason::TooSlow);
            }
        }
        outcome.queued
    }

    // --- Rooms from server code -------------------------------------------

    /// Puts a connection in a room, without asking the room's rule (server
    /// code is trusted). The browser is told with a `joined` frame.
    pub fn join<R: Room>(&self, connection: ConnectionId, room: &R) -> bool {
        self.join_name(connection, &room.name())
    }

    pub(crate) fn join_name(&self, connection: ConnectionId, room: &RoomName) -> bool {
        self.add_to_room(connection, room).is_ok()
    }

    /// Adds a connection to a room, tells it (`joined`), and updates the
    /// room's presence.
    pub(crate) fn add_to_room(
        &self,
        connection: ConnectionId,
        room: &RoomName,
    ) -> Result<(), registry::JoinError> {
        let max = self.inner.config.max_rooms_per_connection;
        let arrived = self.inner.registry.write().join(connection, room, max)?;
        self.send_control(connection, &protocol::ControlFrame::Joined { room });
        if self.tracks_presence(room) {
            // A new user: everyone in the room hears. Another tab of a user
            // already there: only that tab needs the list.
            if arrived {
                self.local_presence_changed(room);
            } else {
                self.send_presence(room, Target::connection(connection));
            }
        }
        Ok(())
    }

    /// Takes a connection out of a room. The browser is told with a `left`
    /// frame.
    pub fn leave<R: Room>(&self, connection: ConnectionId, room: &R) -> bool {
        self.leave_name(connection, &room.name())
    }

    pub(crate) fn leave_name(&self, connection: ConnectionId, room: &RoomName) -> bool {
        let departure = self.inner.registry.write().leave(connection, room);
        let Some(user_departed) = departure else {
            return false;
        };
        self.send_control(connection, &protocol::ControlFrame::Left { room });
        if user_departed && self.tracks_presence(room) {
            self.local_presence_changed(room);
        }
        true
    }

    fn tracks_presence(&self, room: &RoomName) -> bool {
        room.split()
            .is_some_and(|(kind, _)| self.inner.presence.contains(kind))
    }

    /// The users of a room on this process changed: tells the other
    /// processes, and this process's members of the room.
    fn local_presence_changed(&self, room: &RoomName) {
        let _in_order = self.inner.presence_order.lock();
        if let Some(link) = self.link() {
            let members = self.inner.registry.read().room_members_by_user(room);
            link.publish_state(
                &Message::Presence {
                    room: room.clone(),
                    members,
                },
                &[],
            );
        }
        self.send_presence(room, Target::room_name(room.clone()));
    }

    /// Sends the room's current members, on every process, to `target`'s
    /// connections on this process. (Each process tells its own.)
    fn send_presence(&self, room: &RoomName, target: Target) {
        let _in_order = self.inner.presence_order.lock();
        let local = self.inner.registry.read().room_members_by_user(room);
        let members = match self.link() {
            Some(link) => backplane::merge_members(local, link.remote.lock().members(room)),
            None => local,
        };
        let presence = crate::Presence {
            room: room.clone(),
            members,
        };
        match serde_json::to_string(&presence) {
            Ok(data) => {
                let frame = protocol::event_frame(<crate::Presence as Event>::NAME, &data);
                self.deliver_local(&target, &frame.into());
            }
            Err(error) => tracing::error!(%error, "presence could not be sent"),
        }
    }

    /// Re-sends the members of rooms whose remote members changed, to this
    /// process's connections in them.
    fn refresh_presence(&self, rooms: &[RoomName]) {
        let _in_order = self.inner.presence_order.lock();
        for room in rooms {
            if self.inner.registry.read().has_room(room) {
                self.send_presence(room, Target::room_name(room.clone()));
            }
        }
    }

    /// The users with at least one connection in the room, each once.
    pub fn room_users<R: Room>(&self, room: &R) -> Vec<UserId> {
        self.inner.registry.read().room_users(&room.name())
    }

    /// The connections in the room.
    pub fn room_connections<R: Room>(&self, room: &R) -> Vec<ConnectionId> {
        self.inner.registry.read().room_members(&room.name())
    }

    /// Queues a control frame for one connection.
    fn send_control(&self, connection: ConnectionId, frame: &protocol::ControlFrame<'_>) {
        let Ok(json) = serde_json::to_string(frame) else {
            return;
        };
        self.deliver_local(&Target::connection(connection), &json.into());
    }

    // --- Disconnecting -----------------------------------------------------

    /// Closes every connection opened with this session, at once: the
    /// connections leave the registry before this returns, so no event sent
    /// afterwards reaches them. Call it when the session ends (log-out).
    /// Returns how many connections were closed.
    pub fn disconnect_session(&self, session: &SessionKey) -> usize {
        if let Some(link) = self.link() {
            // Never dropped: kept until Redis is back if it is away, and told
            // again to processes that reconnect.
            link.end_session(session);
        }
        self.disconnect_local_session(session)
    }

    fn disconnect_local_session(&self, session: &SessionKey) -> usize {
        let connections = self.inner.registry.read().session_connections(session);
        connections
            .iter()
            .filter(|connection| self.disconnect(**connection, CloseReason::SessionEnded))
            .count()
    }

    /// Closes every connection, for a shutdown: browsers reconnect.
    pub fn disconnect_all(&self) -> usize {
        let connections = self.inner.registry.read().connection_ids();
        connections
            .iter()
            .filter(|connection| self.disconnect(**connection, CloseReason::GoingAway))
            .count()
    }

    /// Removes a connection from the registry and tells its task to close.
    fn disconnect(&self, connection: ConnectionId, reason: CloseReason) -> bool {
        match self.forget(connection) {
            Some(entry) => {
                entry.close(reason);
                true
            }
            None => false,
        }
    }

    /// Removes a connection from the registry, and updates the presence of
    /// the rooms its user has now left.
    pub(crate) fn forget(&self, connection: ConnectionId) -> Option<registry::Connection> {
        let (entry, departed_from) = {
            let mut registry = self.inner.registry.write();
            let entry = registry.remove(connection)?;
            let departed_from: Vec<RoomName> = match entry.identity.user {
                Some(user) => entry
                    .rooms
                    .iter()
                    .filter(|room| self.tracks_presence(room) && !registry.user_in_room(room, user))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (entry, departed_from)
        };
        for room in &departed_from {
            self.local_presence_changed(room);
        }
        Some(entry)
    }

    /// How many connections, users, sessions and rooms the registry holds.
    pub fn stats(&self) -> RegistryStats {
        self.inner.registry.read().stats()
    }

    // --- The backplane ------------------------------------------------------

    fn link(&self) -> Option<&Arc<Link>> {
        self.inner.link.get()
    }

    /// Connects this hub to a backplane transport: envelopes to publish
    /// come out of the returned link's queue. A hub has one backplane, for
    /// its whole life; `None` if it already has one.
    pub(crate) fn attach(&self, outbound: mpsc::Sender<Bytes>) -> Option<Arc<Link>> {
        let link = Arc::new(Link::new(NodeId::random(), outbound));
        self.inner.link.set(Arc::clone(&link)).ok()?;
        Some(link)
    }

    /// Whether the backplane is connected: `None` without a backplane.
    pub fn backplane_connected(&self) -> Option<bool> {
        self.link().map(|link| link.is_up())
    }

    /// How many other processes this one has heard from recently.
    pub fn peers(&self) -> usize {
        self.link().map_or(0, |link| link.remote.lock().nodes())
    }

    /// This process's users in every room whose presence is tracked.
    pub(crate) fn presence_snapshot(&self) -> Vec<(RoomName, Vec<Member>)> {
        let registry = self.inner.registry.read();
        registry
            .room_names()
            .filter(|room| self.tracks_presence(room))
            .map(|room| (room.clone(), registry.room_members_by_user(room)))
            .filter(|(_, members)| !members.is_empty())
            .collect()
    }

    /// Acts on an envelope from the backplane. Its own echoes, and
    /// envelopes it cannot read, are dropped.
    pub(crate) fn receive(&self, link: &Link, bytes: Bytes) {
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(%error, "dropped an unreadable message from the backplane");
                return;
            }
        };
        if envelope.node == link.node {
            link.echo_received();
            return;
        }
        let from = envelope.node;
        let known = link.remote.lock().is_known(from);
        let carries_state = matches!(
            envelope.message,
            Message::Hello { .. } | Message::Snapshot { .. }
        );
        match envelope.message {
            Message::Deliver { target } => match Utf8Bytes::try_from(envelope.payload) {
                Ok(frame) => {
                    self.deliver_local(&target, &frame);
                }
                Err(_) => tracing::warn!(node = %from, "dropped an event that is not UTF-8"),
            },
            Message::CloseSession { session } => {
                self.disconnect_local_session(&session);
            }
            Message::Presence { room, members } => {
                let _in_order = self.inner.presence_order.lock();
                if link.remote.lock().set_room(from, &room, members) {
                    self.refresh_presence(&[room]);
                }
            }
            Message::Hello { rooms } => {
                let _in_order = self.inner.presence_order.lock();
                let changed = link.remote.lock().replace_node(from, rooms);
                self.refresh_presence(&changed);
                link.publish_state(
                    &Message::Snapshot {
                        rooms: self.presence_snapshot(),
                    },
                    &[],
                );
                // It may have missed log-outs while it was cut off.
                link.replay_ended_sessions();
            }
            Message::Snapshot { rooms } => {
                let _in_order = self.inner.presence_order.lock();
                let changed = link.remote.lock().replace_node(from, rooms);
                self.refresh_presence(&changed);
            }
            Message::Heartbeat => {}
            Message::Goodbye => {
                let _in_order = self.inner.presence_order.lock();
                let changed = link.remote.lock().forget_node(from);
                self.refresh_presence(&changed);
                return;
            }
        }
        // After the message: a snapshot replaces what was known of the node.
        link.remote.lock().heard_from(from, Instant::now());
        if !known && !carries_state {
            // A node this one had presumed gone (it was silent too long) or
            // never met: ask everyone for their state, this one's included.
            self.say_hello(link);
        }
    }

    /// Publishes this node's presence everywhere and asks the other nodes
    /// for theirs.
    pub(crate) fn say_hello(&self, link: &Link) {
        let _in_order = self.inner.presence_order.lock();
        link.publish_state(
            &Message::Hello {
                rooms: self.presence_snapshot(),
            },
            &[],
        );
    }

    /// Forgets the presence of processes not heard from since `deadline`.
    pub(crate) fn forget_silent_nodes(&self, link: &Link, deadline: Instant) {
        let _in_order = self.inner.presence_order.lock();
        let changed = link.remote.lock().forget_silent(deadline);
        self.refresh_presence(&changed);
    }
}

/// An emit being prepared: its target is set, `except` may be added, and
/// [`Emit::emit`] sends it.
#[must_use = "nothing is sent until `.emit(&event)`"]
pub struct Emit<'h> {
    hub: &'h Hub,
    target: Target,
}

impl Emit<'_> {
    /// Leaves one connection out.
    pub fn except(mut self, connection: ConnectionId) -> Self {
        self.target = self.target.except(connection);
        self
    }

    /// Leaves out the connection of the tab that called the current server
    /// function: that tab already knows (it made the change).
    pub fn except_caller(mut self) -> Self {
        self.target = self.target.except_maybe(caller());
        self
    }

    /// Encodes `event` once and queues it for every recipient. Returns how
    /// many connections of this process it was queued for.
    pub fn emit<E: Event>(self, event: &E) -> Result<usize, EmitError> {
        if self.target.is_nobody() {
            return Ok(0);
        }
        let data = serde_json::to_string(event).map_err(|source| EmitError::Encode {
            event: E::NAME,
            source,
        })?;
        let frame = protocol::event_frame(E::NAME, &data);
        Ok(self.hub.deliver_encoded(&self.target, frame.into()))
    }

    /// Sends a domain event through its hooks, to its own targets (the
    /// target of this emit is replaced; `except` is kept).
    pub fn broadcast<B: Broadcast>(self, event: &B) -> Result<usize, EmitError> {
        if !event.broadcast_when() {
            return Ok(0);
        }
        let target = event.broadcast_on().except_maybe(self.target.except);
        self.hub.target(target).emit(&event.broadcast_as())
    }
}

/// Values that name one or more users for [`Hub::to`]: a user id (or an
/// integer), an array, a slice or a `Vec` of them.
pub trait IntoUserIds {
    fn into_user_ids(self) -> Vec<UserId>;
}

impl IntoUserIds for UserId {
    fn into_user_ids(self) -> Vec<UserId> {
        vec![self]
    }
}

impl IntoUserIds for i64 {
    fn into_user_ids(self) -> Vec<UserId> {
        vec![UserId(self)]
    }
}

impl IntoUserIds for i32 {
    fn into_user_ids(self) -> Vec<UserId> {
        vec![self.into()]
    }
}

impl<U: Into<UserId>, const N: usize> IntoUserIds for [U; N] {
    fn into_user_ids(self) -> Vec<UserId> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<U: Into<UserId>> IntoUserIds for Vec<U> {
    fn into_user_ids(self) -> Vec<UserId> {
        self.into_iter().map(Into::into).collect()
    }
}

impl<U: Into<UserId> + Copy> IntoUserIds for &[U] {
    fn into_user_ids(self) -> Vec<UserId> {
        self.iter().copied().map(Into::into).collect()
    }
}

/// The connection of the browser tab that made the current server-function
/// call, from the header [`crate::RealtimeClient`] adds. `None` outside a
/// server function, or when the tab had no open connection.
pub fn caller() -> Option<ConnectionId> {
    leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| caller_from_headers(&parts.headers))
}

/// The calling connection named in a request's headers.
pub fn caller_from_headers(headers: &HeaderMap) -> Option<ConnectionId> {
    headers
        .get(protocol::CONNECTION_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
