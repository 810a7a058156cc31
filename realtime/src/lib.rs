//! A typed real-time events layer for Leptos and axum.
//!
//! The server pushes typed events over one WebSocket per browser tab, to
//! everyone, to users (every tab of each), to rooms, to one tab, or to
//! everyone but the tab that called. The browser subscribes to event
//! *types* with Leptos hooks that clean up when their component unmounts.
//! Nobody writes an event's name as a string, so a typo does not compile.
//!
//! - Shared by both sides: [`Event`], [`Room`], the ids, and the wire
//!   [`protocol`].
//! - [`server`] (feature `ssr`): the [`server::Hub`] that accepts
//!   connections and delivers events.
//! - [`testing`] (feature `ssr`): a protocol-speaking WebSocket client for
//!   integration tests.
//! - [`client`] (all builds; live with feature `hydrate`): the tab's
//!   connection and the hooks. During server-side rendering the hooks do
//!   nothing.
//!
//! `docs/protocol.md` in the repository describes the wire format.

pub mod client;
mod event;
mod ids;
mod presence;
pub mod protocol;
mod room;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod testing;

pub use client::{
    ConnectionState, Counts, Realtime, RealtimeClient, RoomStatus, Subscription, provide_realtime,
    use_connection_state, use_event, use_event_once, use_latest, use_presence, use_realtime,
    use_resumed, use_room, use_room_signal,
};
pub use event::Event;
pub use ids::{ConnectionId, UserId};
pub use presence::{Member, Presence};
pub use room::{Room, RoomName};
