//! The browser side: one WebSocket per tab, and Leptos hooks on top of it.
//!
//! Call [`provide_realtime`] once, in the root component. The socket opens
//! after hydration (never during server-side rendering), reconnects with
//! capped exponential backoff and jitter, and re-joins its rooms. The hooks
//! are safe to call during server-side rendering, where they do nothing.
//!
//! | Hook | What it gives |
//! |---|---|
//! | [`use_event`] | calls a handler for each event of a type while the component is mounted |
//! | [`use_event_once`] | the same, for the next event only |
//! | [`use_latest`] | the last event of a type, as a signal |
//! | [`use_connection_state`] | [`ConnectionState`], as a signal |
//! | [`use_room`] / [`use_room_signal`] | membership of a room while mounted, as a [`RoomStatus`] signal |
//! | [`use_presence`] | the users in a room, as a signal |
//! | [`use_resumed`] | how many times the connection came back, to reload missed data |
//!
//! Everything a hook registers is removed by `on_cleanup` when its
//! component unmounts.

pub(crate) mod backoff;
mod dispatch;
mod rooms;
mod server_fn_client;
#[cfg(feature = "hydrate")]
mod socket;

use leptos::prelude::*;

pub use self::{
    backoff::Backoff,
    dispatch::{Call, DecodeError, Dispatcher, HandlerId, HandlerOutcome, run_each_catching},
    rooms::RoomBook,
    server_fn_client::RealtimeClient,
};
use crate::{ConnectionId, Event, Member, Presence, Room, RoomName};

/// The state of the tab's connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening for the first time (and during server-side rendering).
    Connecting,
    /// Open: events arrive.
    Open,
    /// Lost; the next attempt is the `attempt`-th retry.
    Reconnecting { attempt: u32 },
}

impl ConnectionState {
    /// A short word for the state, for a status indicator.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Open => "live",
            Self::Reconnecting { .. } => "reconnecting",
        }
    }
}

/// What a tab holds: see [`Realtime::counts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Event subscriptions.
    pub subscriptions: usize,
    /// Room memberships (several may share one room).
    pub memberships: usize,
}

/// Where a tab stands with one room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoomStatus {
    /// Asked (or about to ask, once connected) and waiting for the answer.
    Joining,
    /// In the room: its events arrive.
    Joined,
    /// The room's rule said no; the reason is for the person at the keyboard.
    Refused(String),
    /// Not in the room (left, or removed by the server).
    Left,
}

/// The tab's real-time connection, shared through context. A `Copy`
/// handle: pass it into closures freely.
#[derive(Clone, Copy)]
pub struct Realtime {
    state: RwSignal<ConnectionState>,
    resumed: RwSignal<u32>,
    /// Live subscriptions and wanted rooms, for debugging and tests.
    counts: RwSignal<Counts>,
    #[cfg(feature = "hydrate")]
    runtime: StoredValue<std::rc::Rc<socket::Runtime>, LocalStorage>,
}

impl Realtime {
    fn new() -> Self {
        let state = RwSignal::new(ConnectionState::Connecting);
        let resumed = RwSignal::new(0);
        Self {
            state,
            resumed,
            counts: RwSignal::new(Counts::default()),
            #[cfg(feature = "hydrate")]
            runtime: StoredValue::new_local(socket::Runtime::new(state, resumed)),
        }
    }

    /// The connection state, as a signal.
    pub fn state(&self) -> Signal<ConnectionState> {
        self.state.into()
    }

    /// How many subscriptions and room memberships the tab holds, as a
    /// signal: a page that cleans up after itself returns to the same
    /// counts when a component unmounts.
    pub fn counts(&self) -> Signal<Counts> {
        self.counts.into()
    }

    /// How many times the connection came back after it was lost, as a
    /// signal. Events sent meanwhile were missed: a resource that reads
    /// this signal loads its data again after each reconnect.
    pub fn resumed(&self) -> Signal<u32> {
        self.resumed.into()
    }

    /// The id of the open connection, if any.
    pub fn connection_id(&self) -> Option<ConnectionId> {
        #[cfg(feature = "hydrate")]
        {
            socket::current_connection()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            None
        }
    }

    /// Subscribes `handler` to events of type `E` until
    /// [`Subscription::unsubscribe`]. Prefer [`use_event`] in components.
    pub fn subscribe<E, R>(&self, handler: impl Fn(E) -> R + 'static) -> Subscription
    where
        E: Event + Clone,
        R: HandlerOutcome + 'static,
    {
        self.add_handler(false, handler)
    }

    /// Subscribes `handler` to the next event of type `E` only.
    pub fn once<E, R>(&self, handler: impl FnOnce(E) -> R + 'static) -> Subscription
    where
        E: Event + Clone,
        R: HandlerOutcome + 'static,
    {
        // The dispatcher calls a `once` handler at most once.
        let handler = std::cell::Cell::new(Some(handler));
        self.add_handler(true, move |event: E| match handler.take() {
            Some(handler) => handler(event).into_outcome(),
            None => Ok(()),
        })
    }

    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    fn add_handler<E, R>(&self, once: bool, handler: impl Fn(E) -> R + 'static) -> Subscription
    where
        E: Event + Clone,
        R: HandlerOutcome + 'static,
    {
        #[cfg(feature = "hydrate")]
        let id = self
            .runtime
            .try_with_value(|runtime| runtime.subscribe(once, handler));
        #[cfg(not(feature = "hydrate"))]
        let id = None;
        Subscription {
            realtime: *self,
            id,
        }
    }

    /// Removes a subscription.
    pub fn unsubscribe(&self, subscription: Subscription) {
        #[cfg(feature = "hydrate")]
        if let Some(id) = subscription.id {
            self.runtime
                .try_with_value(|runtime| runtime.unsubscribe(id));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = subscription;
    }

    /// Joins a room until [`Membership::leave`]; several memberships of one
    /// room share one join. Prefer [`use_room`] in components.
    pub fn join<R: Room>(&self, room: &R) -> Membership {
        self.join_name(room.name())
    }

    fn join_name(&self, room: RoomName) -> Membership {
        #[cfg(feature = "hydrate")]
        let status = match self
            .runtime
            .try_with_value(|runtime| runtime.want_room(&room))
        {
            Some(status) => {
                self.counts.update(|counts| counts.memberships += 1);
                status
            }
            None => ArcRwSignal::new(RoomStatus::Joining),
        };
        #[cfg(not(feature = "hydrate"))]
        let status = ArcRwSignal::new(RoomStatus::Joining);
        Membership {
            realtime: *self,
            room,
            status,
        }
    }

    /// Closes the connection and opens a new one at once: after logging in
    /// or out, so the connection belongs to whoever the browser is now.
    pub fn reconnect(&self) {
        #[cfg(feature = "hydrate")]
        self.runtime.try_with_value(|runtime| runtime.reconnect());
    }
}

/// A subscription made by [`Realtime::subscribe`] or a hook.
#[derive(Clone, Copy)]
pub struct Subscription {
    realtime: Realtime,
    /// `None` where there is no runtime (server-side rendering).
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    id: Option<HandlerId>,
}

impl Subscription {
    pub fn unsubscribe(self) {
        self.realtime.unsubscribe(self);
    }
}

/// Membership of one room, made by [`Realtime::join`] or a hook.
pub struct Membership {
    realtime: Realtime,
    room: RoomName,
    /// Reference-counted, not owned by a component: it stays readable for
    /// as long as anyone holds it.
    status: ArcRwSignal<RoomStatus>,
}

impl Membership {
    pub fn status(&self) -> ArcReadSignal<RoomStatus> {
        self.status.read_only()
    }

    pub fn room(&self) -> &RoomName {
        &self.room
    }

    /// Gives up this membership; the tab leaves the room when no other
    /// membership of it remains.
    pub fn leave(self) {
        #[cfg(feature = "hydrate")]
        if self
            .realtime
            .runtime
            .try_with_value(|runtime| runtime.release_room(&self.room))
            .is_some()
        {
            self.realtime
                .counts
                .try_update(|counts| counts.memberships -= 1);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = self.realtime;
    }
}

/// Creates the tab's connection and shares it with every component below.
/// Call it once, in the root component; the socket opens after hydration.
pub fn provide_realtime() -> Realtime {
    let realtime = Realtime::new();
    provide_context(realtime);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        realtime.runtime.try_with_value(|runtime| runtime.start());
    });
    realtime
}

/// The connection provided by [`provide_realtime`].
pub fn use_realtime() -> Realtime {
    use_context::<Realtime>()
        .expect("no Realtime in context: call realtime::provide_realtime() in the root component")
}

/// Calls `handler` with every event of type `E` while the calling component
/// is mounted. A handler that panics or returns an error does not stop the
/// others.
///
/// ```ignore
/// use_event(move |event: SomethingHappened| set_last.set(Some(event.message)));
/// ```
pub fn use_event<E, R>(handler: impl Fn(E) -> R + 'static) -> Subscription
where
    E: Event + Clone,
    R: HandlerOutcome + 'static,
{
    let subscription = use_realtime().subscribe(handler);
    on_cleanup(move || subscription.unsubscribe());
    subscription
}

/// Calls `handler` with the next event of type `E` only (if the component
/// is still mounted then).
pub fn use_event_once<E, R>(handler: impl FnOnce(E) -> R + 'static) -> Subscription
where
    E: Event + Clone,
    R: HandlerOutcome + 'static,
{
    let subscription = use_realtime().once(handler);
    on_cleanup(move || subscription.unsubscribe());
    subscription
}

/// The latest event of type `E` received while the component is mounted.
pub fn use_latest<E: Event + Clone>() -> ReadSignal<Option<E>> {
    let (latest, set_latest) = signal(None);
    use_event(move |event: E| {
        set_latest.try_set(Some(event));
    });
    latest
}

/// The connection state, as a signal.
pub fn use_connection_state() -> Signal<ConnectionState> {
    use_realtime().state()
}

/// How many times the connection came back after it was lost (see
/// [`Realtime::resumed`]).
pub fn use_resumed() -> Signal<u32> {
    use_realtime().resumed()
}

/// The members of whichever room `room` names, kept up to date by the
/// server's [`Presence`] events (for kinds of room with presence). Empty
/// while not in the room.
pub fn use_presence<R, F>(room: F) -> Signal<Vec<Member>>
where
    R: Room,
    F: Fn() -> Option<R> + Send + Sync + 'static,
{
    let room = Memo::new(move |_| room().map(|room| room.name()));
    let members = RwSignal::new(Vec::<Member>::new());
    // Another room: forget the old room's members until the new list comes.
    Effect::new(move |previous: Option<Option<RoomName>>| {
        let current = room.get();
        if previous.is_some_and(|previous| previous != current) {
            members.set(Vec::new());
        }
        current
    });
    use_event(move |presence: Presence| {
        if room.try_get_untracked().flatten().as_ref() == Some(&presence.room) {
            members.try_set(presence.members);
        }
    });
    members.into()
}

/// Keeps the tab in `room` while the calling component is mounted.
pub fn use_room<R: Room>(room: R) -> Signal<RoomStatus> {
    let membership = use_realtime().join(&room);
    let status = membership.status();
    on_cleanup(move || membership.leave());
    Signal::derive(move || status.get())
}

/// Keeps the tab in whichever room `room` currently names (none for
/// `None`), leaving the previous one when it changes, and the last one when
/// the component unmounts.
pub fn use_room_signal<R, F>(room: F) -> Signal<RoomStatus>
where
    R: Room + PartialEq,
    F: Fn() -> Option<R> + Send + Sync + 'static,
{
    let realtime = use_realtime();
    let wanted = Memo::new(move |_| room().map(|room| room.name()));
    let current = StoredValue::new(None::<Membership>);
    // The status of the current membership; `None` while in no room.
    let status = RwSignal::new(None::<ArcReadSignal<RoomStatus>>);
    Effect::new(move |_| {
        let wanted = wanted.get();
        current.update_value(|membership| {
            if let Some(previous) = membership.take() {
                previous.leave();
            }
            *membership = wanted.map(|room| realtime.join_name(room));
            status.set(membership.as_ref().map(Membership::status));
        });
    });
    on_cleanup(move || {
        current.try_update_value(|membership| membership.take().map(Membership::leave));
    });
    // `try_get`: while the component is being torn down, a child may still
    // read this after `status` is gone.
    Signal::derive(move || {
        status
            .try_get()
            .flatten()
            .map_or(RoomStatus::Left, |status| status.get())
    })
}
