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
//! | [`use_room_from`] | the same, recovering what followed the position a page was rendered from |
//! | [`use_presence`] | the users in a room, as a signal |
//! | [`use_resumed`] | how many times the connection came back |
//! | [`use_missed`] | how many times the tab learnt it missed events of a stream it cannot recover, to load its data again |
//!
//! Everything a hook registers is removed by `on_cleanup` when its
//! component unmounts.
//!
//! Files: this one holds the tab's handle, [`Realtime`]; `hooks.rs` the
//! hooks; `dispatch.rs` hands each event frame to the handlers of its type;
//! `room_book.rs` counts which rooms the tab's components want;
//! `server_fn_client.rs` names the calling tab on server-function calls.
//! The runtime behind the handle comes in two twins with one API:
//! `socket/`, the real one (feature `hydrate`), and `inert.rs`, which
//! does nothing, for server-side rendering.

mod dispatch;
mod hooks;
#[cfg(any(feature = "hydrate", test))]
mod progress;
mod room_book;
mod server_fn_client;

#[cfg(not(feature = "hydrate"))]
mod inert;
#[cfg(feature = "hydrate")]
mod socket;

#[cfg(not(feature = "hydrate"))]
use inert as runtime;
#[cfg(feature = "hydrate")]
use socket as runtime;

use std::collections::HashMap;

use leptos::prelude::*;

pub use self::{
    dispatch::{Call, DecodeError, Dispatcher, HandlerId, HandlerOutcome, run_each_catching},
    hooks::{
        Members, use_connection_state, use_event, use_event_once, use_latest, use_missed,
        use_presence, use_resumed, use_room, use_room_from, use_room_signal,
    },
    room_book::RoomBook,
    server_fn_client::RealtimeClient,
};
use crate::{ConnectionId, Event, Position, Room, RoomName, Stream};

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
    /// Event subscriptions, including `once` subscriptions already used
    /// until their component lets them go.
    pub subscriptions: usize,
    /// Room memberships (several may share one room).
    pub memberships: usize,
}

impl Counts {
    /// What a tab's subscriptions and wanted rooms add up to.
    pub fn of(dispatcher: &Dispatcher, rooms: &RoomBook) -> Self {
        Self {
            subscriptions: dispatcher.len(),
            memberships: rooms.memberships(),
        }
    }
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
    signals: Signals,
    runtime: runtime::Handle,
}

/// What the runtime tells the page, as signals.
#[derive(Clone, Copy)]
struct Signals {
    state: RwSignal<ConnectionState>,
    resumed: RwSignal<u32>,
    /// Live subscriptions and wanted rooms, kept by the runtime.
    counts: RwSignal<Counts>,
    /// Discontinuities received, per stream; under `None`, reconnects to a
    /// server that keeps no history (every stream missed what it missed).
    missed: RwSignal<HashMap<Option<Stream>, u32>>,
}

impl Realtime {
    fn new() -> Self {
        let signals = Signals {
            state: RwSignal::new(ConnectionState::Connecting),
            resumed: RwSignal::new(0),
            counts: RwSignal::new(Counts::default()),
            missed: RwSignal::new(HashMap::new()),
        };
        Self {
            signals,
            runtime: runtime::Handle::new(signals),
        }
    }

    /// The connection state, as a signal.
    pub fn state(&self) -> Signal<ConnectionState> {
        self.signals.state.into()
    }

    /// How many subscriptions and room memberships the tab holds, as a
    /// signal: a page that cleans up after itself returns to the same
    /// counts when a component unmounts. Always zero during server-side
    /// rendering, where nothing subscribes.
    pub fn counts(&self) -> Signal<Counts> {
        self.signals.counts.into()
    }

    /// How many times the connection came back after it was lost, as a
    /// signal.
    pub fn resumed(&self) -> Signal<u32> {
        self.signals.resumed.into()
    }

    /// How many times the tab learnt that it missed durable events of
    /// `stream` that cannot be recovered (a `discontinuity`: too long
    /// away, or the server lost its history; or a reconnect to a server
    /// that keeps no history), as a signal. A resource that reads it loads
    /// its data again then; events that can be recovered are replayed to
    /// the handlers instead.
    pub fn missed(&self, stream: Stream) -> Signal<u32> {
        let missed = self.signals.missed;
        let stream = Some(stream);
        Signal::derive(move || {
            missed.with(|missed| {
                let count = |key| missed.get(key).copied().unwrap_or(0);
                count(&stream) + count(&None)
            })
        })
    }

    /// The id of the open connection, if any.
    pub fn connection_id(&self) -> Option<ConnectionId> {
        runtime::current_connection()
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

    fn add_handler<E, R>(&self, once: bool, handler: impl Fn(E) -> R + 'static) -> Subscription
    where
        E: Event + Clone,
        R: HandlerOutcome + 'static,
    {
        Subscription {
            realtime: *self,
            id: self.runtime.subscribe(once, handler),
        }
    }

    /// Removes a subscription.
    pub fn unsubscribe(&self, subscription: Subscription) {
        if let Some(id) = subscription.id {
            self.runtime.unsubscribe(id);
        }
    }

    /// Joins a room until [`Membership::leave`]; several memberships of one
    /// room share one join. Prefer [`use_room`] in components.
    pub fn join<R: Room>(&self, room: &R) -> Membership {
        self.join_name(room.name())
    }

    fn join_name(&self, room: RoomName) -> Membership {
        // A name longer than the protocol allows is refused here, on the
        // server's render and in the browser alike, and never sent: the
        // server would answer with an `error` the page never sees (or, past
        // its frame limit, close the connection, which the tab would open
        // again, and join again, for ever).
        let status = if room.is_too_long() {
            ArcRwSignal::new(RoomStatus::Refused(crate::protocol::room_name_too_long()))
        } else {
            self.runtime
                .want_room(&room)
                .unwrap_or_else(|| ArcRwSignal::new(RoomStatus::Joining))
        };
        Membership {
            realtime: *self,
            room,
            status,
        }
    }

    /// The page shows what `stream` held up to `position`: its data was read
    /// after that position (a server function returns both). Call it in
    /// the component that handles the stream's events, when the data
    /// arrives. Either way, its handlers get every event after `position`,
    /// each once: a handler subscribed before the events arrived had them
    /// live (keep what it heard over the data, as the app's `LiveRecords`
    /// does), and one subscribed after the call, in the same turn, gets
    /// those the tab heard before it existed.
    ///
    /// - The tab asks for what followed when it joins the stream (a room's
    ///   `join`, or its first connection for everyone's and the user's), so
    ///   an event sent between the render and the join is delivered, not
    ///   lost.
    /// - A tab that already reads the stream, and heard events after
    ///   `position` before the component's handlers existed (a page loaded
    ///   over HTTP while they arrived), hands those events to the handlers
    ///   subscribed since the call, in a microtask; the handlers that had
    ///   them do not get them again. If it no longer has all of them (it
    ///   keeps the latest thousand), [`Realtime::missed`] rises for the
    ///   stream instead, and the page loads its data again.
    ///
    /// `None` (the server could not say where the stream stood, its history
    /// being out of reach): once the tab follows the stream, it counts what
    /// it may have missed as missed ([`Realtime::missed`] rises), so the
    /// page loads its data again.
    pub fn recover_from(&self, stream: Stream, position: impl Into<Option<Position>>) {
        self.runtime.recover_from(stream, position.into());
    }

    /// Closes the connection and opens a new one at once: after logging in
    /// or out, so the connection belongs to whoever the browser is now.
    pub fn reconnect(&self) {
        self.runtime.reconnect();
    }
}

/// A subscription made by [`Realtime::subscribe`] or a hook.
#[derive(Clone, Copy)]
pub struct Subscription {
    realtime: Realtime,
    /// `None` where there is no runtime (server-side rendering).
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
        // One too long was never joined (`Realtime::join`).
        if !self.room.is_too_long() {
            self.realtime.runtime.release_room(&self.room);
        }
    }
}

/// Creates the tab's connection and shares it with every component below.
/// Call it once, in the root component; the socket opens after hydration.
pub fn provide_realtime() -> Realtime {
    let realtime = Realtime::new();
    provide_context(realtime);
    // Effects run in the browser only, after hydration.
    Effect::new(move |_| realtime.runtime.start());
    realtime
}

/// The connection provided by [`provide_realtime`].
pub fn use_realtime() -> Realtime {
    use_context::<Realtime>()
        .expect("no Realtime in context: call realtime::provide_realtime() in the root component")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Presence;

    #[test]
    fn counts_follow_subscriptions_and_memberships() {
        let mut dispatcher = Dispatcher::default();
        let mut rooms = RoomBook::default();
        assert_eq!(Counts::of(&dispatcher, &rooms), Counts::default());

        let every = dispatcher.subscribe(false, |_: Presence| ());
        let once = dispatcher.subscribe(true, |_: Presence| ());
        let (lobby, kitchen) = (RoomName::from("chat:1"), RoomName::from("chat:2"));
        rooms.want(&lobby);
        rooms.want(&lobby);
        rooms.want(&kitchen);
        let held = Counts {
            subscriptions: 2,
            memberships: 3,
        };
        assert_eq!(Counts::of(&dispatcher, &rooms), held);

        // A `once` subscription that has run still counts until its
        // component unmounts and lets it go.
        let calls = dispatcher
            .prepare(Presence::NAME, r#"{"room":"chat:1","members":[]}"#)
            .unwrap();
        run_each_catching(calls, |_, _, error| panic!("{error}"));
        assert_eq!(Counts::of(&dispatcher, &rooms), held);

        dispatcher.unsubscribe(every);
        dispatcher.unsubscribe(once);
        rooms.release(&lobby);
        assert_eq!(
            Counts::of(&dispatcher, &rooms),
            Counts {
                subscriptions: 0,
                memberships: 2
            }
        );
        rooms.release(&lobby);
        rooms.release(&kitchen);
        assert_eq!(Counts::of(&dispatcher, &rooms), Counts::default());
    }
}
