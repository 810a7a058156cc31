//! Typed events: a Rust type is an event when it implements [`Event`].
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize)]
//! struct SomethingHappened {
//!     message: String,
//! }
//!
//! impl realtime::Event for SomethingHappened {
//!     const NAME: &'static str = "SomethingHappened";
//! }
//! ```
//!
//! Events are durable unless the type says otherwise ([`Event::DURABLE`]).
//!
//! The name is what travels on the wire, so renaming the Rust type does not
//! break clients that are still running the old bundle. It is written once,
//! here; emitting and subscribing name the type, never the string, so a typo
//! is a compile error and a type that is not an event does not compile:
//!
//! ```compile_fail
//! # #[derive(serde::Serialize, serde::Deserialize)] struct NotAnEvent;
//! fn subscribe<E: realtime::Event>() {}
//! subscribe::<NotAnEvent>();
//! ```

use serde::{Serialize, de::DeserializeOwned};

/// A message the server pushes to browsers.
///
/// Implement it with one line, the wire name. The server encodes the value
/// with serde (JSON) once per emit, and every subscribed browser decodes it
/// back into the same type.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event's name on the wire: stable, and unique among the
    /// application's events.
    const NAME: &'static str;

    /// Whether the event is durable (the default): recorded in the streams
    /// of its target ([`crate::stream`]), so that a tab that missed it
    /// (offline for a moment, reconnecting after a restart) gets it
    /// afterwards, or is told that it cannot. A volatile event (`false`)
    /// reaches only the tabs connected when it is sent, at the cost of
    /// nothing: right for what is stale a second later, such as "is
    /// typing" or presence.
    const DURABLE: bool = true;
}
