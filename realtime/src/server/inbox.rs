//! What the broker hands to this hub: events and news from the other
//! processes, and the questions of setting the histories right after an
//! outage. Each goes to its owner; what a delivery overflowed is closed
//! here, as after any delivery.
//!
//! The inbox holds the hub weakly: the broker's task must not keep a hub
//! alive that everyone else let go of.

use std::sync::Weak;

use axum::extract::ws::Utf8Bytes;

use super::{
    Hub, HubInner, SessionKey, Target,
    broker::{Fetched, Followed, Inbox, NodeId, Placed, PresenceNews, ReadError},
};
use crate::stream::{Epoch, Position, Stream};

/// The hub's [`Inbox`].
pub(super) struct HubInbox(Weak<HubInner>);

impl HubInbox {
    pub fn new(hub: Weak<HubInner>) -> Self {
        Self(hub)
    }

    /// The hub, while it lives.
    fn hub(&self) -> Option<Hub> {
        self.0.upgrade().map(|inner| Hub { inner })
    }
}

impl Inbox for HubInbox {
    fn deliver(&self, target: &Target, frame: Utf8Bytes) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.registry.deliver(target, &frame));
        }
    }

    fn placed(&self, event: Placed<'_>) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.streams.placed(&event));
        }
    }

    #[cfg(feature = "redis")]
    fn not_placed(&self, event: Box<super::broker::Durable>) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.streams.place_here(event));
        }
    }

    fn reset(&self, stream: &Stream, position: Position) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.streams.reset(stream, position));
        }
    }

    #[cfg(feature = "redis")]
    fn unsendable(&self, stream: &Stream, position: Position, id: crate::stream::EventId) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.streams.unsendable(stream, position, id));
        }
    }

    fn session_ended(&self, session: &SessionKey) {
        if let Some(hub) = self.hub() {
            hub.disconnect_local_session(session);
        }
    }

    fn recently_ended_sessions(&self, max: usize) -> Vec<SessionKey> {
        self.hub()
            .map(|hub| hub.inner.ended_sessions.recent(max))
            .unwrap_or_default()
    }

    fn presence(&self, node: NodeId, news: PresenceNews) {
        if let Some(hub) = self.hub() {
            hub.inner.presence.heard(node, news);
        }
    }

    fn node_gone(&self, node: NodeId) {
        if let Some(hub) = self.hub() {
            hub.inner.presence.node_gone(node);
        }
    }

    #[cfg(feature = "redis")]
    fn node_lost(&self) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.streams.node_lost());
        }
    }

    fn joined(&self) {
        if let Some(hub) = self.hub() {
            hub.inner.presence.say_hello();
        }
    }

    fn take_diverged(&self) -> Vec<(Stream, Option<Epoch>)> {
        self.hub()
            .map(|hub| hub.inner.streams.take_diverged())
            .unwrap_or_default()
    }

    fn diverged_again(&self, streams: &[(Stream, Option<Epoch>)]) {
        if let Some(hub) = self.hub() {
            hub.inner.streams.diverged_again(streams);
        }
    }

    fn has_diverged(&self) -> bool {
        self.hub()
            .is_some_and(|hub| hub.inner.streams.has_diverged())
    }

    fn followed(&self) -> Vec<Followed> {
        self.hub()
            .map(|hub| hub.inner.streams.followed())
            .unwrap_or_default()
    }

    #[cfg(feature = "redis")]
    fn streams_read_here(&self) -> Vec<Stream> {
        self.hub()
            .map(|hub| hub.inner.registry.streams_read())
            .unwrap_or_default()
    }

    #[cfg(feature = "redis")]
    fn followed_where(&self, chosen: &dyn Fn(&Stream) -> bool) -> Vec<Followed> {
        self.hub()
            .map(|hub| hub.inner.streams.followed_where(chosen))
            .unwrap_or_default()
    }

    #[cfg(feature = "redis")]
    fn blind_where(&self, chosen: &dyn Fn(&Stream) -> bool) -> Vec<Followed> {
        self.hub()
            .map(|hub| hub.inner.streams.blind_where(chosen))
            .unwrap_or_default()
    }

    #[cfg(feature = "redis")]
    fn forget_unheard(&self, unheard: &dyn Fn(&Stream) -> bool) {
        if let Some(hub) = self.hub() {
            hub.inner.streams.forget_unheard(unheard);
        }
    }

    fn caught_up(
        &self,
        stream: &Stream,
        from: Option<Position>,
        fetched: Result<Fetched, ReadError>,
    ) {
        if let Some(hub) = self.hub() {
            hub.finish(hub.inner.streams.caught_up(stream, from, fetched));
        }
    }
}
