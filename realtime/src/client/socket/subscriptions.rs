//! The tab's subscriptions: event handlers added and removed, rooms
//! joined with the first component that wants them and left with the
//! last, where a page's data stands in their streams, and the counts
//! signal of what the tab holds.

use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};

use super::Runtime;
use crate::{
    Event as RealtimeEvent, Position, RoomName, Stream,
    client::{Counts, HandlerId, HandlerOutcome, RoomStatus},
    protocol::ClientFrame,
};

impl Runtime {
    pub(super) fn subscribe<E, R>(
        &self,
        once: bool,
        handler: impl Fn(E) -> R + 'static,
    ) -> HandlerId
    where
        E: RealtimeEvent + Clone,
        R: HandlerOutcome + 'static,
    {
        let id = self.dispatcher.borrow_mut().subscribe(once, handler);
        self.recount();
        id
    }

    pub(super) fn unsubscribe(&self, id: HandlerId) {
        self.dispatcher.borrow_mut().unsubscribe(id);
        self.recount();
    }

    /// Updates the counts signal to what the tab holds now.
    fn recount(&self) {
        let counts = Counts::of(&self.dispatcher.borrow(), &self.inner.borrow().rooms);
        // `try_`: the page may be tearing the signal down with the
        // components whose cleanup got here.
        self.counts.try_set(counts);
    }

    /// One more component wants the room: joins it if it is the first.
    pub(super) fn want_room(&self, room: &RoomName) -> ArcRwSignal<RoomStatus> {
        let (first, status) = {
            let mut inner = self.inner.borrow_mut();
            let first = inner.rooms.want(room);
            let status = inner
                .room_status
                .entry(room.clone())
                .or_insert_with(|| ArcRwSignal::new(RoomStatus::Joining))
                .clone();
            (first, status)
        };
        self.recount();
        if first {
            status.set(RoomStatus::Joining);
            let since = self.inner.borrow().progress.room(room);
            self.send(&ClientFrame::Join {
                room: room.clone(),
                since,
            });
        }
        status
    }

    /// One component no longer wants the room: leaves it if it was the last.
    pub(super) fn release_room(&self, room: &RoomName) {
        let last = {
            let mut inner = self.inner.borrow_mut();
            let last = inner.rooms.release(room);
            if last {
                inner.progress.left(room);
                // Not set to `Left`: nobody is watching any more, and the
                // components that were are being torn down. Waking their
                // views now would read signals already gone.
                inner.room_status.remove(room);
            }
            last
        };
        self.recount();
        if last {
            self.send(&ClientFrame::Leave { room: room.clone() });
        }
    }

    /// The page shows `stream` up to `position` (see
    /// `Realtime::recover_from`): the tab recovers from there, hands the
    /// page's new handlers what it heard since, or counts the stream as
    /// missed.
    pub(super) fn recover_from(self: &Rc<Self>, stream: Stream, position: Option<Position>) {
        // A room too long to join is never joined (`Realtime::join`).
        if matches!(&stream, Stream::Room(room) if room.is_too_long()) {
            return;
        }
        // The calling component's handlers are those subscribed from now
        // on: those before it did not ask for the events again.
        let since = self.dispatcher.borrow().newest();
        let recovery = {
            let mut inner = self.inner.borrow_mut();
            let follows = inner.follows(&stream);
            inner
                .progress
                .recover_from(stream.clone(), position, follows)
        };
        if recovery.missed {
            self.count_missed([stream]);
            return;
        }
        let Some(position) = recovery.hand_again else {
            return;
        };
        // In a microtask: the component that called this subscribes its
        // handlers after the call, in the same turn.
        let runtime = Rc::downgrade(self);
        let later = Closure::once_into_js(move || {
            if let Some(runtime) = runtime.upgrade() {
                runtime.hand_again(&stream, position, since);
            }
        });
        if let Some(window) = web_sys::window() {
            window.queue_microtask(later.unchecked_ref());
        }
    }

    /// Hands the events the tab heard after `position` in `stream` to the
    /// handlers subscribed after `since` and after each was handed on.
    fn hand_again(&self, stream: &Stream, position: Position, since: HandlerId) {
        let newest = self.dispatcher.borrow().newest();
        let events = self
            .inner
            .borrow_mut()
            .progress
            .hand_again_after(stream, position, newest);
        for (name, data, handed_to) in events {
            self.hand_on(&name, &data, Some(handed_to.max(since)));
        }
    }

    pub(super) fn set_room_status(&self, room: &RoomName, new: RoomStatus) {
        let status = self.inner.borrow().room_status.get(room).cloned();
        if let Some(status) = status {
            status.set(new);
        }
    }
}
