//! The hooks: what a component calls to receive events, follow the
//! connection, and be in rooms. Each registers through the tab's
//! [`super::Realtime`], and removes what it registered with `on_cleanup`
//! when its component unmounts.

use leptos::prelude::*;

use super::{ConnectionState, HandlerOutcome, Membership, RoomStatus, Subscription, use_realtime};
use crate::{Event, Member, Position, Presence, Room, RoomName, Stream};

/// Calls `handler` with every event of type `E` while the calling component
/// is mounted. A handler that panics or returns an error does not stop the
/// others.
///
/// ```ignore
/// use_event(move |event: SomethingHappened| set_last.set(Some(event.message)));
/// ```
pub fn use_event<E, R>(handler: impl Fn(E) -> R + 'static) -> Subscription
where
    E: Event + Clone,
    R: HandlerOutcome + 'static,
{
    until_unmount(use_realtime().subscribe(handler))
}

/// Calls `handler` with the next event of type `E` only (if the component
/// is still mounted then).
pub fn use_event_once<E, R>(handler: impl FnOnce(E) -> R + 'static) -> Subscription
where
    E: Event + Clone,
    R: HandlerOutcome + 'static,
{
    until_unmount(use_realtime().once(handler))
}

/// Ends `subscription` when the calling component unmounts.
fn until_unmount(subscription: Subscription) -> Subscription {
    on_cleanup(move || subscription.unsubscribe());
    subscription
}

/// The latest event of type `E` received while the component is mounted.
pub fn use_latest<E: Event + Clone>() -> ReadSignal<Option<E>> {
    let (latest, set_latest) = signal(None);
    use_event(move |event: E| {
        set_latest.try_set(Some(event));
    });
    latest
}

/// The connection state, as a signal.
pub fn use_connection_state() -> Signal<ConnectionState> {
    use_realtime().state()
}

/// How many times the connection came back after it was lost (see
/// [`super::Realtime::resumed`]).
pub fn use_resumed() -> Signal<u32> {
    use_realtime().resumed()
}

/// How many times the tab learnt it missed events of `stream` that cannot
/// be recovered (see [`super::Realtime::missed`]): read it in a resource's
/// source to fetch again what depends on the stream.
///
/// ```ignore
/// let missed = use_missed(Stream::room(&ChatRoom(7)));
/// let history = Resource::new(move || missed.get(), |_| load_history(7));
/// ```
pub fn use_missed(stream: Stream) -> Signal<u32> {
    use_realtime().missed(stream)
}

/// The members of whichever room `room` names, kept up to date by the
/// server's [`Presence`] events (for kinds of room with presence). Empty
/// while not in the room.
pub fn use_presence<R, F>(room: F) -> Signal<Members>
where
    R: Room,
    F: Fn() -> Option<R> + Send + Sync + 'static,
{
    let room = Memo::new(move |_| room().map(|room| room.name()));
    let members = RwSignal::new(Members::default());
    // Another room: forget the old room's members until the new list comes.
    Effect::new(move |previous: Option<Option<RoomName>>| {
        let current = room.get();
        if previous.is_some_and(|previous| previous != current) {
            members.set(Members::default());
        }
        current
    });
    use_event(move |presence: Presence| {
        if room.try_get_untracked().flatten().as_ref() == Some(&presence.room) {
            members.try_set(Members {
                listed: presence.members,
                more: presence.more,
            });
        }
    });
    members.into()
}

/// A room's users, as [`use_presence`] has them: the first of them by name
/// (all of them, unless the room is large), and how many more.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    pub listed: Vec<Member>,
    pub more: usize,
}

impl Members {
    /// How many users are in the room.
    pub fn total(&self) -> usize {
        self.listed.len() + self.more
    }
}

/// Keeps the tab in `room` while the calling component is mounted, having
/// shown the room's events up to `position` (from the data the page was
/// rendered with): what followed is delivered first. A page rendered
/// without a position counts a gap once joined, and loads again. See
/// [`super::Realtime::recover_from`].
pub fn use_room_from<R: Room>(room: R, position: Option<Position>) -> Signal<RoomStatus> {
    use_realtime().recover_from(Stream::room(&room), position);
    use_room(room)
}

/// Keeps the tab in `room` while the calling component is mounted.
pub fn use_room<R: Room>(room: R) -> Signal<RoomStatus> {
    let membership = use_realtime().join(&room);
    let status = membership.status();
    on_cleanup(move || membership.leave());
    Signal::derive(move || status.get())
}

/// Keeps the tab in whichever room `room` currently names (none for
/// `None`), leaving the previous one when it changes, and the last one when
/// the component unmounts.
pub fn use_room_signal<R, F>(room: F) -> Signal<RoomStatus>
where
    R: Room + PartialEq,
    F: Fn() -> Option<R> + Send + Sync + 'static,
{
    let realtime = use_realtime();
    let wanted = Memo::new(move |_| room().map(|room| room.name()));
    let current = StoredValue::new(None::<Membership>);
    // The status of the current membership; `None` while in no room.
    let status = RwSignal::new(None::<ArcReadSignal<RoomStatus>>);
    Effect::new(move |_| {
        let wanted = wanted.get();
        current.update_value(|membership| {
            if let Some(previous) = membership.take() {
                previous.leave();
            }
            *membership = wanted.map(|room| realtime.join_name(room));
            status.set(membership.as_ref().map(Membership::status));
        });
    });
    on_cleanup(move || {
        current.try_update_value(|membership| membership.take().map(Membership::leave));
    });
    // `try_get`: while the component is being torn down, a child may still
    // read this after `status` is gone.
    Signal::derive(move || {
        status
            .try_get()
            .flatten()
            .map_or(RoomStatus::Left, |status| status.get())
    })
}
