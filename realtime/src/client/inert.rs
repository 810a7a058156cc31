//! The runtime's server-side twin: the same API as `socket/`, doing
//! nothing. During server-side rendering there is no socket: components
//! subscribe and join without effect, and the page renders as
//! "connecting" until the browser takes over.

use leptos::prelude::*;

use super::{HandlerId, HandlerOutcome, RoomStatus, Signals};
use crate::{ConnectionId, Event, Position, RoomName, Stream};

/// A runtime that holds nothing.
#[derive(Clone, Copy)]
pub(super) struct Handle;

impl Handle {
    pub fn new(_signals: Signals) -> Self {
        Self
    }

    pub fn start(&self) {}

    /// No subscription is made: `None`.
    pub fn subscribe<E, R>(
        &self,
        _once: bool,
        _handler: impl Fn(E) -> R + 'static,
    ) -> Option<HandlerId>
    where
        E: Event + Clone,
        R: HandlerOutcome + 'static,
    {
        None
    }

    pub fn unsubscribe(&self, _id: HandlerId) {}

    /// No room is joined: `None`.
    pub fn want_room(&self, _room: &RoomName) -> Option<ArcRwSignal<RoomStatus>> {
        None
    }

    pub fn release_room(&self, _room: &RoomName) {}

    pub fn reconnect(&self) {}

    pub fn recover_from(&self, _stream: Stream, _position: Option<Position>) {}
}

/// There is never an open connection.
pub(super) fn current_connection() -> Option<ConnectionId> {
    None
}

/// There is no tab.
pub(super) fn current_tab() -> Option<crate::stream::TabId> {
    None
}
