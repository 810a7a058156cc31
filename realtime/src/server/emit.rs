//! Emitting: the public API that sends an event to a target.
//!
//! `hub.to(7).except_caller().emit(&event)` starts from the [`Hub`], picks a
//! [`Target`] and builds an [`Emit`]; `emit` encodes the event once and
//! hands the same bytes to every recipient. A volatile event goes to this
//! process's connections (the registry) and, when other processes may have
//! recipients too, is published once through the broker. A durable one
//! goes to the streams, which have the broker place it (`streams/`).

use axum::extract::ws::Utf8Bytes;
use thiserror::Error;
use tokio::sync::oneshot;

use super::{Broadcast, Hub, Placement, Target};
use crate::{ConnectionId, Event, Room, UserId, protocol};

/// An event could not be emitted.
#[derive(Debug, Error)]
pub enum EmitError {
    /// serde could not encode the event (a map with non-string keys, say).
    #[error("could not encode event {event}: {source}")]
    Encode {
        event: &'static str,
        source: serde_json::Error,
    },
    /// The encoded event is larger than [`super::HubConfig::max_event_bytes`];
    /// it was sent to nobody.
    #[error("event {event} is {bytes} bytes, over the limit of {max}")]
    TooLarge {
        event: &'static str,
        bytes: usize,
        max: usize,
    },
}

impl Hub {
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
    /// current server function, whichever process it is on (nobody, if the
    /// call did not come from a tab of its session).
    pub fn to_caller(&self) -> Emit<'_> {
        match self.inner.callers.current("to_caller()") {
            Some(tab) => self.target(Target::tab(tab)),
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

    /// Publishes a volatile event frame once for the other processes, unless
    /// it names only connections of this one, and queues it for every
    /// recipient here.
    fn deliver_everywhere(&self, target: &Target, frame: Utf8Bytes) -> usize {
        if !self.inner.registry.holds_all(target) {
            self.inner.broker.publish(target, &frame);
        }
        self.finish(self.inner.registry.deliver(target, &frame))
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

    /// Leaves out the tab that called the current server function (it made
    /// the change, and knows), on every process and in its replays.
    pub fn except_caller(mut self) -> Self {
        let tab = self.hub.inner.callers.current("except_caller()");
        self.target = self.target.except_tab(tab);
        self
    }

    /// Encodes `event` once and queues it for every recipient. Returns how
    /// many connections of this process it was queued for: with a Redis
    /// backplane, a durable event reaches this process's connections too
    /// once Redis has placed it, and 0 is returned.
    pub fn emit<E: Event>(self, event: &E) -> Result<usize, EmitError> {
        self.send(event, None)
    }

    /// Emits `event`, and waits until it is kept where recoveries read it:
    /// with Redis, until Redis placed it (a tab that reconnects to any
    /// process gets it, even if this one dies now). Answers where it was
    /// kept. For a server function that must not answer "done" before its
    /// event is safe; [`Emit::emit`] does not wait.
    pub async fn emit_placed<E: Event>(self, event: &E) -> Result<Placement, EmitError> {
        let (placed, placement) = oneshot::channel();
        self.send(event, Some(placed))?;
        // Dropped unanswered: the process is stopping with the event still
        // queued for Redis, which never placed it.
        Ok(placement.await.unwrap_or(Placement::NotKept))
    }

    fn send<E: Event>(
        self,
        event: &E,
        placed: Option<oneshot::Sender<Placement>>,
    ) -> Result<usize, EmitError> {
        let not_kept = |placed: Option<oneshot::Sender<Placement>>| {
            if let Some(placed) = placed {
                let _ = placed.send(Placement::NotKept);
            }
        };
        if self.target.is_nobody() {
            not_kept(placed);
            return Ok(0);
        }
        let data = serde_json::to_string(event).map_err(|source| {
            // A bug in the event's type, whoever handles the error: logged
            // here, with the detail the caller's error message may not keep.
            tracing::error!(event = E::NAME, %source, "an event could not be encoded");
            metrics::counter!("realtime_emit_errors_total", "reason" => "encode").increment(1);
            EmitError::Encode {
                event: E::NAME,
                source,
            }
        })?;
        let frame = protocol::event_frame(E::NAME, &data);
        let max = self.hub.config().max_event_bytes;
        if frame.len() > max {
            tracing::warn!(
                event = E::NAME,
                bytes = frame.len(),
                max,
                "an event over the size limit was not sent"
            );
            metrics::counter!("realtime_emit_errors_total", "reason" => "too_large").increment(1);
            return Err(EmitError::TooLarge {
                event: E::NAME,
                bytes: frame.len(),
                max,
            });
        }
        if E::DURABLE && self.hub.inner.streams.records() && !self.target.is_connections_only() {
            let mut target = self.target;
            // With a shared history, an event is placed in each of its
            // streams' shards, which only the processes reading them hear:
            // the connections it names besides are reached as a volatile
            // event is, by every process (one that also reads a stream
            // then gets it twice, once without positions).
            let direct = if self.hub.inner.streams.shares_history() {
                target.take_direct()
            } else {
                None
            };
            let mut delivered = direct.map_or(0, |direct| {
                self.hub.deliver_everywhere(&direct, frame.clone().into())
            });
            let delivery = self.hub.inner.streams.emit(&target, frame, placed);
            delivered += self.hub.finish(delivery);
            return Ok(delivered);
        }
        not_kept(placed);
        Ok(self.hub.deliver_everywhere(&self.target, frame.into()))
    }

    /// Sends a domain event through its hooks, to its own targets (the
    /// target of this emit is replaced; `except` is kept).
    pub fn broadcast<B: Broadcast>(self, event: &B) -> Result<usize, EmitError> {
        if !event.broadcast_when() {
            return Ok(0);
        }
        let target = event
            .broadcast_on()
            .except_maybe(self.target.except)
            .except_tab(self.target.except_tab);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use leptos::prelude::{Owner, provide_context};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Blip;

    impl Event for Blip {
        const NAME: &'static str = "test.Blip";
        const DURABLE: bool = false;
    }

    /// What the logs say.
    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `except_caller()` and `to_caller()` log in a server-function
    /// call to `path` with these headers.
    fn logged(path: &str, headers: &[(&str, &str)]) -> String {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            Owner::new().with(|| {
                let mut request = http::Request::builder().uri(path);
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let (parts, ()) = request.body(()).unwrap().into_parts();
                provide_context(parts);
                let hub = Hub::builder().build();
                hub.except_caller().emit(&Blip).unwrap();
                hub.to_caller().emit(&Blip).unwrap();
            });
        });
        String::from_utf8(log.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_caller_the_server_cannot_know_is_a_warning_naming_the_server_function_once() {
        let warned = logged("/api/test/unmarked", &[]);
        assert!(
            warned.contains("/api/test/unmarked")
                && warned.contains("client = realtime::RealtimeClient"),
            "{warned}"
        );
        assert_eq!(warned.matches("WARN").count(), 1, "once: {warned}");
        assert!(
            logged("/api/test/unmarked", &[]).is_empty(),
            "once per server function"
        );

        // Calls through RealtimeClient, with or without an open connection.
        for mark in [protocol::NO_CONNECTION, "00000000000000ab"] {
            let path = format!("/api/test/marked/{mark}");
            assert!(logged(&path, &[(protocol::CONNECTION_HEADER, mark)]).is_empty());
        }
    }
}
