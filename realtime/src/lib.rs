//! A typed real-time events layer for Leptos and axum.
//!
//! The server pushes typed events over one WebSocket per browser tab, to
//! everyone, to users (every tab of each), to rooms, to one tab, or to
//! everyone but the tab that called. The browser subscribes to event
//! *types* with Leptos hooks that clean up when their component unmounts.
//! Nobody writes an event's name as a string, so a typo does not compile.
//!
//! - Shared by both sides: [`Event`], [`Room`], the ids, [`Presence`],
//!   [`Backoff`], the wire [`protocol`] and the [`stream`]s that durable
//!   events are recorded in.
//! - [`server`] (feature `ssr`): the [`server::Hub`] that accepts
//!   connections and delivers events, and the [`server::broker`] that
//!   joins several processes (Redis, with the feature `redis`).
//! - [`client`] (all builds; live with feature `hydrate`): the tab's
//!   connection and the hooks. During server-side rendering the hooks do
//!   nothing.
//!
//! A WebSocket client for integration tests is in the `realtime-testing`
//! crate beside this one, so servers never compile it.
//!
//! ## Where things live
//!
//! Each piece of the server's state has one owner (`server/mod.rs` has
//! the table): the registry of connections and rooms (`server/registry/`),
//! the streams of durable events (`server/streams/`), presence
//! (`server/presence/`) and the broker to the other processes
//! (`server/broker/`).
//!
//! - **Who may join a room**: the rule the application gives for each kind
//!   of room (`HubBuilder::room`), kept in the join-rule registry
//!   (`server/join_rules.rs`) and run when a browser asks to join
//!   (`server/membership.rs`, through `server/connection/joins.rs`).
//! - **What happens to a slow tab**: its bounded queue fills, the hub
//!   closes it with code 4008, and the browser reconnects and reloads. The
//!   whole chain is described in `server/close.rs`.
//! - **How an emit reaches another process**: `server/emit.rs` → the
//!   broker (`server/broker/redis/link.rs` → `transport.rs` → Redis →
//!   `receive.rs` on the other process) → that hub's inbox
//!   (`server/inbox.rs`) → its registry → its connections;
//!   `server/broker/redis/mod.rs` walks through it.
//! - **What a tab that was away gets**: durable events are placed in each
//!   stream they are for (`server/streams/`: in memory,
//!   `streams/history.rs`, or in Redis, `server/broker/redis/history.rs`)
//!   and replayed on request (`server/streams/recovery.rs`, which says what
//!   is replayed to whom).
//! - **The wire format**: [`protocol`] in code; `docs/protocol.md` in the
//!   repository describes every frame, close code and limit, and the
//!   messages between processes (`server/broker/redis/envelope.rs`).

pub mod backoff;
pub mod client;
mod event;
mod ids;
mod presence;
pub mod protocol;
mod room;
#[cfg(feature = "ssr")]
pub mod server;
pub mod stream;

pub use backoff::Backoff;
pub use client::{
    ConnectionState, Counts, Members, Realtime, RealtimeClient, RoomStatus, Subscription,
    provide_realtime, use_connection_state, use_event, use_event_once, use_latest, use_missed,
    use_presence, use_realtime, use_resumed, use_room, use_room_from, use_room_signal,
};
pub use event::Event;
pub use ids::{ConnectionId, UserId};
pub use presence::{Member, Presence};
pub use room::{Room, RoomName};
pub use stream::{Position, Stream};
