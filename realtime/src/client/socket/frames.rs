//! What the tab does with each frame the server sends: the `welcome`,
//! events (handed to their handlers, each once), the answers to joins and
//! leaves, and the streams it may have missed.

use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::MessageEvent;

use super::{CURRENT_CONNECTION, Inner, Runtime, follows};
use crate::{
    ConnectionId, RoomName, Stream,
    client::{ConnectionState, HandlerId, RoomStatus, progress::Arriving},
    protocol::{ClientFrame, ServerFrame},
};

impl Runtime {
    pub(super) fn on_message(self: &Rc<Self>, event: MessageEvent) {
        if !self.is_current(&event) {
            return;
        }
        let Some(text) = event.data().as_string() else {
            return;
        };
        let frame = match ServerFrame::parse(&text) {
            Ok(frame) => frame,
            Err(error) => {
                leptos::logging::warn!(
                    "realtime: ignoring a frame the client cannot read: {error}"
                );
                return;
            }
        };
        match frame {
            ServerFrame::Welcome {
                connection,
                user,
                positions,
            } => {
                // A server that keeps no history sends no positions: after
                // a reconnect, whatever was sent meanwhile is lost.
                let recovers = !positions.is_empty();
                let unanchored = self.inner.borrow_mut().progress.welcomed(user, positions);
                self.count_missed(unanchored);
                self.on_welcome(connection, recovers);
            }
            ServerFrame::Event {
                name,
                data,
                recorded,
            } => {
                let newest = self.dispatcher.borrow().newest();
                let new = recorded.is_none_or(|recorded| {
                    let mut inner = self.inner.borrow_mut();
                    let Inner {
                        progress, rooms, ..
                    } = &mut *inner;
                    let arriving = Arriving {
                        name: &name,
                        data: data.get(),
                        handed_to: newest,
                    };
                    progress.arrived(&recorded, |stream| follows(rooms, stream), arriving)
                });
                // Brought again by a replay (through another stream, or
                // read ahead of the live events).
                if new {
                    self.hand_on(&name, data.get(), None);
                }
            }
            ServerFrame::Joined { room, position } => {
                let stream = Stream::Room(room.clone());
                let mut inner = self.inner.borrow_mut();
                // A page shown without a position: what the room said
                // before this join may be missing from it.
                let unanchored = position.is_some_and(|position| {
                    inner.follows(&stream) && inner.progress.joined(stream.clone(), position)
                });
                drop(inner);
                if unanchored {
                    self.count_missed([stream]);
                }
                self.on_joined(&room);
            }
            ServerFrame::Refused { room, reason } => {
                self.set_room_status(&room, RoomStatus::Refused(reason));
            }
            ServerFrame::Left { room } => self.set_room_status(&room, RoomStatus::Left),
            ServerFrame::Error { code, message } => {
                leptos::logging::warn!(
                    "realtime: the server could not use a frame ({code:?}): {message}"
                );
            }
            ServerFrame::Discontinuity {
                stream,
                reason,
                position,
            } => {
                leptos::logging::log!("realtime: missed events of {stream} ({reason:?})");
                let mut inner = self.inner.borrow_mut();
                if inner.follows(&stream) {
                    inner.progress.discontinuity(stream.clone(), position);
                }
                drop(inner);
                self.count_missed([stream]);
            }
        }
    }

    /// The tab may have missed events of these streams that it cannot
    /// recover: what depends on them loads again.
    pub(super) fn count_missed(&self, streams: impl IntoIterator<Item = Stream>) {
        let streams: Vec<Stream> = streams.into_iter().collect();
        if streams.is_empty() {
            return;
        }
        self.missed.update(|missed| {
            for stream in streams {
                *missed.entry(Some(stream)).or_default() += 1;
            }
        });
    }

    fn on_welcome(self: &Rc<Self>, connection: ConnectionId, recovers: bool) {
        CURRENT_CONNECTION.with(|current| current.set(Some(connection)));
        let (rooms, resumed) = {
            let mut inner = self.inner.borrow_mut();
            inner.welcomed = true;
            let resumed = std::mem::replace(&mut inner.ever_welcomed, true);
            inner.backoff.reset();
            let rooms: Vec<_> = inner
                .rooms
                .wanted()
                .map(|room| (room.clone(), inner.progress.room(room)))
                .collect();
            (rooms, resumed)
        };
        self.state.set(ConnectionState::Open);
        if resumed {
            self.resumed.update(|count| *count += 1);
            if !recovers {
                // Every stream missed what it missed.
                self.missed
                    .update(|missed| *missed.entry(None).or_default() += 1);
            }
        }
        // Re-join every room still wanted (the server forgot them with the
        // old connection), with what was missed meanwhile.
        for (room, since) in rooms {
            self.set_room_status(&room, RoomStatus::Joining);
            self.send(&ClientFrame::Join { room, since });
        }
    }

    /// Hands an event to its handlers: all of them, or (`after`) those
    /// subscribed after that one only.
    pub(super) fn hand_on(&self, name: &str, data: &str, after: Option<HandlerId>) {
        let prepared = match after {
            None => self.dispatcher.borrow_mut().prepare(name, data),
            Some(after) => self
                .dispatcher
                .borrow_mut()
                .prepare_after(name, data, after),
        };
        let calls = match prepared {
            Ok(calls) => calls,
            Err(error) => {
                leptos::logging::error!("realtime: {error}");
                return;
            }
        };
        // Each handler runs in its own microtask: if one panics (a trap in
        // wasm), or fails, the others still run.
        for call in calls {
            let run = Closure::once_into_js(move || {
                let event = call.event;
                if let Err(error) = call.run() {
                    leptos::logging::error!("realtime: a handler of {event} failed: {error}");
                }
            });
            if let Some(window) = web_sys::window() {
                window.queue_microtask(run.unchecked_ref());
            }
        }
    }

    fn on_joined(&self, room: &RoomName) {
        let wanted = self.inner.borrow().rooms.is_wanted(room);
        if wanted {
            self.set_room_status(room, RoomStatus::Joined);
        } else {
            // Released while the join was on its way.
            self.send(&ClientFrame::Leave { room: room.clone() });
        }
    }
}
