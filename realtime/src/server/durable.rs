//! Durable events: appended to the history of each stream they are for,
//! then delivered with their place in it.
//!
//! Alone, a durable emit is appended to this process's history and queued
//! for its readers in one step, under the history's lock
//! ([`Hub::record_here`]).
//!
//! With a Redis backplane, Redis places it: the emit is handed to the link
//! (`backplane/link.rs`), one script appends it to each stream's history in
//! Redis and publishes it, and every process, this one included, delivers
//! it when the publication arrives ([`Hub::deliver_placed`]). Publications
//! arrive in the order Redis ran the scripts, so every browser sees a
//! stream's events in the order of their offsets, whichever process
//! emitted them. Each process keeps what it received in its history, a
//! mirror of Redis's, to serve most recoveries without asking Redis.
//!
//! While Redis is unreachable (or cannot keep up), durable emits are placed
//! here, in epochs of this process's own, and reach this process's
//! connections only. As soon as Redis can, each stream written so is reset
//! in Redis ([`Hub::reset_stream`] on every process): its readers
//! everywhere get a discontinuity and fetch again. After an outage, a
//! stream this process follows but did not write is caught up from Redis
//! ([`Hub::catch_up`]): the events the others placed meanwhile, or a
//! discontinuity if Redis lost them. A publication that shows a gap in a
//! stream followed here (after an outage, for a stream the mirror had
//! forgotten) tells its readers here the same way.

use std::{collections::HashSet, time::Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::oneshot;

use super::{
    Hub, Placement, Target,
    backplane::Record,
    history::{Applied, Recorded as Kept},
    registry::{Delivery, Except},
};
use crate::{
    ConnectionId, protocol,
    protocol::ControlFrame,
    stream::{Discontinuity, EventId, Position, Recorded, Stream, TabId},
};

/// A durable event Redis placed, as the backplane received it.
pub(crate) struct Placed<'a> {
    pub target: &'a Target,
    pub id: EventId,
    pub except_tab: Option<TabId>,
    /// Each stream with the event's position in it.
    pub streams: Vec<(Stream, Position)>,
    /// The event frame without a position.
    pub frame: &'a str,
}

impl Hub {
    /// Records a durable event and delivers it: through Redis when it is
    /// connected (this process's readers get it when Redis publishes it:
    /// 0 is returned), otherwise here at once. Returns how many of this
    /// process's connections it was queued for.
    pub(super) fn emit_durable(
        &self,
        target: &Target,
        frame: String,
        placed: Option<oneshot::Sender<Placement>>,
    ) -> usize {
        let id = EventId(rand::random());
        let Some(link) = self.link() else {
            return self.record_here(target, id, &frame, placed);
        };
        let except_tab = target
            .except
            .and_then(|except| self.inner.registry.read().tab_of(except));
        let record = Record {
            target: target.clone(),
            id,
            except_tab,
            streams: streams_of(target),
            frame,
            placed,
        };
        match link.record(record) {
            Ok(()) => 0,
            Err(record) => self.record_instead(*record),
        }
    }

    /// Places here a durable event Redis did not take (it was unreachable,
    /// or could not keep up).
    pub(crate) fn record_instead(&self, record: Record) -> usize {
        self.record_here(&record.target, record.id, &record.frame, record.placed)
    }

    /// Appends a durable event to the streams of `target` in this process's
    /// history and queues it for their readers here, as one step, then tells
    /// a waiting emitter (`Placement::Local`). Returns how many connections
    /// it was queued for.
    fn record_here(
        &self,
        target: &Target,
        id: EventId,
        frame: &str,
        placed: Option<oneshot::Sender<Placement>>,
    ) -> usize {
        let streams = streams_of(target);
        let now = Instant::now();
        let mut outcome = Delivery::default();
        {
            let mut history = self.inner.history.lock();
            let registry = self.inner.registry.read();
            let except = Except {
                connection: target.except,
                tab: target.except.and_then(|except| registry.tab_of(except)),
            };
            let mut seen = seen_set(streams.len() + target.connections.len());
            for stream in &streams {
                let mut at = None;
                let frame = history.append(
                    stream,
                    except.tab,
                    |position| {
                        at = Some(position);
                        positioned(frame, id, stream, position)
                    },
                    now,
                );
                if let Some(position) = at {
                    registry.deliver_event(
                        (stream, position),
                        except,
                        &frame,
                        seen.as_mut(),
                        &mut outcome,
                    );
                }
            }
            let frame = Utf8Bytes::from(frame.to_owned());
            registry.deliver_to_each(
                target.connections.iter().copied(),
                except,
                &frame,
                seen.as_mut(),
                &mut outcome,
            );
        }
        if let Some(placed) = placed {
            let _ = placed.send(Placement::Local);
        }
        self.finish_delivery(outcome)
    }

    /// Keeps and queues a durable event Redis placed, for its readers here.
    pub(crate) fn deliver_placed(&self, placed: &Placed<'_>) -> usize {
        let now = Instant::now();
        let mut outcome = Delivery::default();
        {
            let mut history = self.inner.history.lock();
            let registry = self.inner.registry.read();
            let except = Except {
                connection: placed.target.except,
                tab: placed.except_tab,
            };
            let mut seen = seen_set(placed.streams.len() + placed.target.connections.len());
            for (stream, position) in &placed.streams {
                let frame = positioned(placed.frame, placed.id, stream, *position);
                let kept = Kept {
                    offset: position.offset,
                    frame: frame.clone(),
                    except: placed.except_tab,
                };
                // Delivered even if the mirror had it (a catch-up, or a read
                // of Redis that ran ahead of the subscription, brought it):
                // a reader that got it already skips it (`Reached`), one
                // that did not must not lose it.
                match history.apply(stream, *position, kept, now) {
                    Applied::Missed(reason) => {
                        let before = Position {
                            offset: position.offset - 1,
                            ..*position
                        };
                        tell_readers(&registry, stream, reason, before, &mut outcome);
                    }
                    Applied::InOrder | Applied::New | Applied::Duplicate => {}
                }
                registry.deliver_event(
                    (stream, *position),
                    except,
                    &frame,
                    seen.as_mut(),
                    &mut outcome,
                );
            }
            if !placed.target.connections.is_empty() {
                let frame = Utf8Bytes::from(placed.frame.to_owned());
                registry.deliver_to_each(
                    placed.target.connections.iter().copied(),
                    except,
                    &frame,
                    seen.as_mut(),
                    &mut outcome,
                );
            }
        }
        self.finish_delivery(outcome)
    }

    /// Redis started `stream` again at `position`: what this process kept
    /// of it is forgotten, and its readers here are told they may have
    /// missed events (`epoch_changed`).
    pub(crate) fn reset_stream(&self, stream: &Stream, position: Position) {
        let mut history = self.inner.history.lock();
        history.reset(stream, position);
        let registry = self.inner.registry.read();
        let mut outcome = Delivery::default();
        tell_readers(
            &registry,
            stream,
            Discontinuity::EpochChanged,
            position,
            &mut outcome,
        );
        drop(registry);
        drop(history);
        self.finish_delivery(outcome);
    }
}

/// What the Redis transport calls after a reconnection (`backplane/redis.rs`).
#[cfg(feature = "redis")]
impl Hub {
    /// Brings `stream` up to date after this process was cut off from
    /// Redis: `fetched` holds what Redis has after `from`, where this
    /// process's mirror stopped. The events are delivered to the readers
    /// here as if live (those that already have one skip it); when Redis
    /// no longer has them, the readers get a discontinuity.
    pub(crate) fn catch_up(
        &self,
        stream: &Stream,
        from: Position,
        fetched: super::backplane::Fetched,
    ) {
        let now = Instant::now();
        let mut history = self.inner.history.lock();
        if history.known(stream) != Some(from) {
            // Moved on meanwhile (a reset, or a publication already
            // received): what arrives from now on is in order again.
            return;
        }
        let registry = self.inner.registry.read();
        let mut outcome = Delivery::default();
        match fetched.events {
            // One replay per reader: a long one is not cut short by the
            // slow-client rule.
            Ok(events) if !events.is_empty() => {
                let to = Position {
                    epoch: fetched.position.epoch,
                    offset: events.last().map_or(from.offset, |last| last.offset),
                };
                registry.replay_to_readers(stream, &events, to, &mut outcome);
                for event in events {
                    let position = Position {
                        epoch: to.epoch,
                        offset: event.offset,
                    };
                    history.apply(stream, position, event, now);
                }
            }
            Ok(_) => {}
            Err(reason) => {
                history.reset(stream, fetched.position);
                tell_readers(&registry, stream, reason, fetched.position, &mut outcome);
            }
        }
        drop(registry);
        drop(history);
        self.finish_delivery(outcome);
    }

    /// Takes the streams this process wrote with positions of its own
    /// (Redis was unreachable, or could not keep up), for Redis to reset.
    pub(crate) fn take_diverged_streams(&self) -> Vec<Stream> {
        self.inner.history.lock().take_diverged()
    }

    /// Streams taken for a reset that did not happen: asked again later.
    pub(crate) fn diverged_again(&self, streams: &[Stream]) {
        self.inner.history.lock().diverged_again(streams);
    }

    /// Whether some streams wait for Redis to reset them.
    pub(crate) fn has_diverged_streams(&self) -> bool {
        self.inner.history.lock().has_diverged()
    }

    /// The streams this process follows in Redis and has readers of, with
    /// how far it got; it forgets those it has no reader of (it may have
    /// missed some of their events: Redis is asked when one is needed).
    pub(crate) fn followed_streams(&self) -> Vec<(Stream, Position)> {
        let mut history = self.inner.history.lock();
        let registry = self.inner.registry.read();
        let (read, unread): (Vec<_>, Vec<_>) = history
            .followed()
            .into_iter()
            .partition(|(stream, _)| registry.has_readers(stream));
        for (stream, _) in unread {
            history.forget(&stream);
        }
        read
    }
}

/// A durable event's frame with its place in `stream`.
fn positioned(frame: &str, id: EventId, stream: &Stream, position: Position) -> Utf8Bytes {
    let recorded = Recorded {
        id,
        stream: stream.clone(),
        position,
    };
    protocol::with_position(frame.to_owned(), &recorded).into()
}

/// Queues a `discontinuity` for every reader of `stream` here: whatever
/// they read of it before `position`, they may have missed some.
fn tell_readers(
    registry: &super::registry::Registry,
    stream: &Stream,
    reason: Discontinuity,
    position: Position,
    outcome: &mut Delivery,
) {
    let frame = ControlFrame::Discontinuity {
        stream,
        reason,
        position,
    };
    if let Ok(json) = serde_json::to_string(&frame) {
        registry.deliver_event(
            (stream, position),
            Except::default(),
            &json.into(),
            None,
            outcome,
        );
    }
}

/// A set to deliver each connection an event once, when it may be named
/// more than once.
fn seen_set(groups: usize) -> Option<HashSet<ConnectionId>> {
    (groups > 1).then(HashSet::new)
}

/// The streams a durable emit to `target` is appended to: everyone's, or
/// each user's and each room's.
pub(super) fn streams_of(target: &Target) -> Vec<Stream> {
    if target.everyone {
        return vec![Stream::Everyone];
    }
    let mut named = HashSet::new();
    target
        .users
        .iter()
        .map(|user| Stream::User(*user))
        .chain(target.rooms.iter().cloned().map(Stream::Room))
        .filter(|stream| named.insert(stream.clone()))
        .collect()
}
