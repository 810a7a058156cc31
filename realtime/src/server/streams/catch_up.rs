//! What the broker asks of the streams around an outage, or around a
//! shard it starts to hear: what to catch up on (the streams followed
//! here, and the blind ones: `blind.rs`), the catch-up itself, the resets
//! the shared history announces, and the streams that must start again.

use std::{sync::atomic::Ordering, time::Instant};

use super::{History, Streams, blind::Blindness};
use crate::{
    ConnectionId, Position, Stream,
    server::{
        broker::{Fetched, Followed, ReadError},
        registry::{Delivery, Maps},
    },
    stream::{Discontinuity, Epoch, EventId},
};

impl Streams {
    /// The shared history started `stream` again at `position`: what this
    /// process kept of it is forgotten, and its readers here are told they
    /// may have missed events.
    pub fn reset(&self, stream: &Stream, position: Position) -> Delivery {
        let (mut history, maps) = self.lock();
        let mut outcome = Delivery::default();
        if history.known(stream) == Some(position) {
            // Caught up on it already (the reset came before the catch-up
            // read it): its readers were told.
            return outcome;
        }
        history.reset(stream, position);
        maps.discontinuity_to_readers(stream, Discontinuity::EpochChanged, position, &mut outcome);
        outcome
    }

    /// A durable event (`id`) placed at `position` in `stream` that this
    /// process cannot send: the stream goes on from it here, and its
    /// readers are told they cannot have it. Nothing to do if this process
    /// stands there or further on already (a read of the shared history
    /// ran ahead of it: the readers that need it were sent it from there),
    /// unless it holds another event at that offset: then the shared
    /// history went back, and the stream starts again, as for a live
    /// event that came again with another id.
    #[cfg(feature = "redis")]
    pub fn unsendable(&self, stream: &Stream, position: Position, id: EventId) -> Delivery {
        let (mut history, maps) = self.lock();
        let mut outcome = Delivery::default();
        let past = history
            .known(stream)
            .is_some_and(|known| known.epoch == position.epoch && known.offset >= position.offset);
        if !past {
            history.reset(stream, position);
            maps.discontinuity_to_readers(stream, Discontinuity::TooOld, position, &mut outcome);
        } else if !history.gave(stream, position, id) {
            tracing::warn!(
                %stream,
                "an offset came again with another event: the shared history went back \
                 (restarted from an older snapshot?); the stream starts again"
            );
            history.went_back(stream, position.epoch);
            self.note_diverged(&history);
        }
        outcome
    }

    /// Another process fell silent without a goodbye (see
    /// [`crate::server::broker::Inbox::node_lost`]): the readers here of
    /// every stream followed are told they may have missed events, from
    /// where the stream stands here (blind streams are told once this
    /// process learns where they stand; streams written here apart start
    /// again anyway).
    #[cfg(feature = "redis")]
    pub fn node_lost(&self) -> Delivery {
        let (history, maps) = self.lock();
        let mut outcome = Delivery::default();
        for (stream, position, _) in history.followed() {
            if maps.has_readers(&stream) {
                let reason = Discontinuity::WriterLost;
                maps.discontinuity_to_readers(&stream, reason, position, &mut outcome);
            }
        }
        outcome
    }

    /// Brings `stream` up to date once the broker hears it again, from
    /// where this process's mirror stopped (`from`), or, for a blind
    /// stream (`None`), from where it stands now: see
    /// [`Streams::caught_up_from`] and [`Streams::anchored`].
    pub fn caught_up(
        &self,
        stream: &Stream,
        from: Option<Position>,
        fetched: Result<Fetched, ReadError>,
    ) -> Delivery {
        match from {
            Some(from) => self.caught_up_from(stream, from, fetched),
            None => self.anchored(stream, fetched),
        }
    }

    /// Brings a followed stream up to date after the broker was cut off: `fetched`
    /// holds what the shared history has after `from`, where this
    /// process's mirror stopped. The events go to the readers here as one
    /// replay each (a reader that has one already skips it); when they
    /// cannot be had, the readers get a discontinuity; when the history
    /// went back, the stream waits to start again in a new epoch.
    fn caught_up_from(
        &self,
        stream: &Stream,
        from: Position,
        fetched: Result<Fetched, ReadError>,
    ) -> Delivery {
        let now = Instant::now();
        let (mut history, maps) = self.lock();
        let mut outcome = Delivery::default();
        if history.known(stream) != Some(from) {
            // Moved on meanwhile (a reset, or a publication already
            // received): what arrives from now on is in order again.
            return outcome;
        }
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(error) => {
                // Its readers cannot be told what they missed: they are
                // told they may have.
                tracing::warn!(%stream, %error, "could not catch up on a stream");
                history.reset(stream, from);
                maps.discontinuity_to_readers(stream, Discontinuity::TooOld, from, &mut outcome);
                return outcome;
            }
        };
        if fetched.went_back {
            tracing::warn!(
                %stream,
                "the shared history went back (restarted from an older snapshot?): \
                 the stream starts again"
            );
            history.went_back(stream, from.epoch);
            self.note_diverged(&history);
            return outcome;
        }
        match fetched.events {
            Ok(events) if !events.is_empty() => {
                let to = Position {
                    epoch: fetched.position.epoch,
                    offset: events.last().map_or(from.offset, |last| last.offset),
                };
                maps.replay_to_readers(stream, &events, to, &mut outcome);
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
                maps.discontinuity_to_readers(stream, reason, fetched.position, &mut outcome);
            }
        }
        outcome
    }

    /// A blind stream (`blind.rs`), read where it stands now: the mirror
    /// follows it from there. If it was unheard for a while, its readers
    /// here may have missed events meanwhile, and are told so. Nothing to do if an
    /// event heard meanwhile told them already (the stream has a log now),
    /// and nothing yet if the read failed (the next catch-up reads again,
    /// and its first event heard tells them).
    fn anchored(&self, stream: &Stream, fetched: Result<Fetched, ReadError>) -> Delivery {
        let (mut history, maps) = self.lock();
        if history.blindness(stream).is_none() {
            return Delivery::default();
        }
        match fetched {
            Ok(fetched) => {
                history.learn(stream, fetched.position, fetched.last_id);
                tell_revealed(&mut history, &maps, None)
            }
            Err(error) => {
                tracing::warn!(%stream, %error, "could not learn where a stream stands");
                Delivery::default()
            }
        }
    }

    /// Takes the streams written here apart from the shared history, or
    /// found to have gone back there: they must start again.
    pub fn take_diverged(&self) -> Vec<(Stream, Option<Epoch>)> {
        let mut history = self.history.lock();
        let diverged = history.take_diverged();
        self.note_diverged(&history);
        diverged
    }

    /// Streams taken for a reset that did not happen: asked again later.
    pub fn diverged_again(&self, streams: &[(Stream, Option<Epoch>)]) {
        let mut history = self.history.lock();
        history.diverged_again(streams);
        self.note_diverged(&history);
    }

    /// Whether some streams wait to be reset (without the lock: asked at
    /// every publication).
    pub fn has_diverged(&self) -> bool {
        self.diverged.load(Ordering::Relaxed)
    }

    /// What to catch up on after an outage: the streams this process
    /// follows in the shared history and has readers of, how far, and the
    /// id of the event there; then those it has readers of and no position
    /// for, which are blind now (it heard none of their events meanwhile).
    /// It forgets the streams it has no reader of (it may have missed some
    /// of their events: the shared history is read when one is needed).
    pub fn followed(&self) -> Vec<Followed> {
        let (mut history, maps) = self.lock();
        // Without a history there are no positions to tell anyone.
        if self.records {
            for stream in maps.streams_read() {
                history.read_blind(&stream, Blindness::Unheard);
            }
        }
        let (read, unread): (Vec<_>, Vec<_>) = history
            .followed()
            .into_iter()
            .partition(|(stream, _, _)| maps.has_readers(stream));
        for (stream, _, _) in unread {
            history.forget(&stream);
        }
        let blind = history.blind_where(|stream| maps.has_readers(stream));
        with_blind(read, blind)
    }

    /// Of what to catch up on (as [`Streams::followed`] gives it), the
    /// streams `chosen`, forgetting nothing: once their shard is heard.
    #[cfg(feature = "redis")]
    pub fn followed_where(&self, chosen: &dyn Fn(&Stream) -> bool) -> Vec<Followed> {
        let (history, maps) = self.lock();
        let read = history
            .followed()
            .into_iter()
            .filter(|(stream, _, _)| chosen(stream) && maps.has_readers(stream))
            .collect();
        let blind = history.blind_where(|stream| chosen(stream) && maps.has_readers(stream));
        with_blind(read, blind)
    }

    /// The blind streams `chosen` (their shard is heard), as
    /// [`Streams::followed`] gives them: read where they stand.
    #[cfg(feature = "redis")]
    pub fn blind_where(&self, chosen: &dyn Fn(&Stream) -> bool) -> Vec<Followed> {
        let (history, maps) = self.lock();
        let blind = history.blind_where(|stream| chosen(stream) && maps.has_readers(stream));
        with_blind(Vec::new(), blind)
    }

    /// Forgets what the mirror holds of the streams this process no longer
    /// hears, without readers here: it would miss their next events.
    #[cfg(feature = "redis")]
    pub fn forget_unheard(&self, unheard: &dyn Fn(&Stream) -> bool) {
        let (mut history, maps) = self.lock();
        history.forget_where(|stream| unheard(stream) && !maps.has_readers(stream));
    }
}

/// Tells the readers here of the streams the history revealed in this
/// step ([`History::take_revealed`]: unheard a while, and now at a known
/// position) that they may have missed events, from that position on; all
/// but `but`, a connection given its own answer in the same step.
pub(super) fn tell_revealed(
    history: &mut History,
    maps: &Maps,
    but: Option<ConnectionId>,
) -> Delivery {
    let mut outcome = Delivery::default();
    for (stream, position) in history.take_revealed() {
        maps.discontinuity_to_readers_but(
            &stream,
            Discontinuity::TooOld,
            position,
            but,
            &mut outcome,
        );
    }
    outcome
}

/// The streams followed from a position, then the blind ones, from where
/// they stand (no position).
fn with_blind(read: Vec<(Stream, Position, Option<EventId>)>, blind: Vec<Stream>) -> Vec<Followed> {
    read.into_iter()
        .map(|(stream, position, id)| (stream, Some(position), id))
        .chain(blind.into_iter().map(|stream| (stream, None, None)))
        .collect()
}
