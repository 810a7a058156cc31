//! The runtime in the browser (feature `hydrate`): the tab's WebSocket,
//! what it does with each frame, and the tab's subscriptions and rooms.
//! `inert.rs` is its server-side twin, with the same API.
//!
//! The runtime lives as long as the page. Its four event callbacks are made
//! once and attached to every socket it opens; a callback ignores events
//! from a socket that has already been replaced.
//!
//! It keeps the tab's progress in each stream (`progress.rs`): every
//! reconnect asks for what followed (everyone's stream and the user's in
//! the upgrade's query, each room in its `join`), an event that comes twice
//! is handed to no handler the second time, and a `discontinuity` raises
//! [`super::Realtime::missed`] for its stream.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::{Rc, Weak},
    time::Duration,
};

use leptos::prelude::*;
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::{
    ConnectionState, Counts, Dispatcher, HandlerId, HandlerOutcome, RoomBook, RoomStatus, Signals,
    progress::Progress,
};
use crate::{
    Backoff, ConnectionId, Event as RealtimeEvent, Position, RoomName, Stream,
    protocol::{self, ClientFrame, ServerFrame},
    stream::TabId,
};

thread_local! {
    /// The open connection's id, for [`super::RealtimeClient`].
    static CURRENT_CONNECTION: Cell<Option<ConnectionId>> = const { Cell::new(None) };
    /// The tab's id, for [`super::RealtimeClient`].
    static CURRENT_TAB: Cell<Option<TabId>> = const { Cell::new(None) };
}

pub(super) fn current_connection() -> Option<ConnectionId> {
    CURRENT_CONNECTION.with(Cell::get)
}

pub(super) fn current_tab() -> Option<TabId> {
    CURRENT_TAB.with(Cell::get)
}

/// The [`super::Realtime`] handle's way to its runtime: `Copy`, and owned
/// by the reactive system like any signal. Once the owner is gone, calls
/// do nothing.
#[derive(Clone, Copy)]
pub(super) struct Handle(StoredValue<Rc<Runtime>, LocalStorage>);

impl Handle {
    pub fn new(signals: Signals) -> Self {
        Self(StoredValue::new_local(Runtime::new(signals)))
    }

    pub fn start(&self) {
        self.0.try_with_value(|runtime| runtime.start());
    }

    pub fn subscribe<E, R>(
        &self,
        once: bool,
        handler: impl Fn(E) -> R + 'static,
    ) -> Option<HandlerId>
    where
        E: RealtimeEvent + Clone,
        R: HandlerOutcome + 'static,
    {
        self.0
            .try_with_value(|runtime| runtime.subscribe(once, handler))
    }

    pub fn unsubscribe(&self, id: HandlerId) {
        self.0.try_with_value(|runtime| runtime.unsubscribe(id));
    }

    pub fn want_room(&self, room: &RoomName) -> Option<ArcRwSignal<RoomStatus>> {
        self.0.try_with_value(|runtime| runtime.want_room(room))
    }

    pub fn release_room(&self, room: &RoomName) {
        self.0.try_with_value(|runtime| runtime.release_room(room));
    }

    pub fn reconnect(&self) {
        self.0.try_with_value(|runtime| runtime.reconnect());
    }

    pub fn recover_from(&self, stream: Stream, position: Option<Position>) {
        self.0.try_with_value(|runtime| {
            let mut inner = runtime.inner.borrow_mut();
            let follows = inner.follows(&stream);
            inner.progress.recover_from(stream, position, follows);
        });
    }
}

struct Runtime {
    state: RwSignal<ConnectionState>,
    resumed: RwSignal<u32>,
    /// What the tab holds, recounted after every change.
    counts: RwSignal<Counts>,
    missed: RwSignal<HashMap<Option<Stream>, u32>>,
    /// Separate from `inner`: handlers may subscribe while events arrive.
    dispatcher: RefCell<Dispatcher>,
    inner: RefCell<Inner>,
    callbacks: RefCell<Option<Callbacks>>,
}

struct Inner {
    started: bool,
    socket: Option<WebSocket>,
    /// Set once the `welcome` frame arrived: frames may be sent.
    welcomed: bool,
    /// Whether a connection was ever welcomed.
    ever_welcomed: bool,
    backoff: Backoff,
    retry: Option<TimeoutHandle>,
    rooms: RoomBook,
    room_status: HashMap<RoomName, ArcRwSignal<RoomStatus>>,
    progress: Progress,
}

struct Callbacks {
    message: Closure<dyn FnMut(MessageEvent)>,
    close: Closure<dyn FnMut(CloseEvent)>,
    error: Closure<dyn FnMut(Event)>,
}

impl Runtime {
    fn new(signals: Signals) -> Rc<Self> {
        let Signals {
            state,
            resumed,
            counts,
            missed,
        } = signals;
        let runtime = Rc::new(Self {
            state,
            resumed,
            counts,
            missed,
            dispatcher: RefCell::new(Dispatcher::default()),
            inner: RefCell::new(Inner {
                started: false,
                socket: None,
                welcomed: false,
                ever_welcomed: false,
                backoff: Backoff::default(),
                retry: None,
                rooms: RoomBook::default(),
                room_status: HashMap::new(),
                progress: Progress::new(new_tab_id()),
            }),
            callbacks: RefCell::new(None),
        });
        let tab = runtime.inner.borrow().progress.tab();
        CURRENT_TAB.with(|current| current.set(Some(tab)));
        *runtime.callbacks.borrow_mut() = Some(Callbacks::new(Rc::downgrade(&runtime)));
        runtime
    }

    /// Opens the first connection (once).
    fn start(self: &Rc<Self>) {
        let first = !std::mem::replace(&mut self.inner.borrow_mut().started, true);
        if first {
            self.connect();
        }
    }

    fn connect(self: &Rc<Self>) {
        let resume = self.inner.borrow().progress.resume();
        let url = format!("{}?{}", socket_url(), resume.to_query());
        let socket = match WebSocket::new(&url) {
            Ok(socket) => socket,
            Err(error) => {
                leptos::logging::error!("realtime: cannot open {url}: {error:?}");
                self.schedule_retry(false);
                return;
            }
        };
        if let Some(callbacks) = &*self.callbacks.borrow() {
            socket.set_onmessage(Some(callbacks.message.as_ref().unchecked_ref()));
            socket.set_onclose(Some(callbacks.close.as_ref().unchecked_ref()));
            socket.set_onerror(Some(callbacks.error.as_ref().unchecked_ref()));
        }
        let mut inner = self.inner.borrow_mut();
        inner.socket = Some(socket);
        inner.welcomed = false;
    }

    /// Whether `event` comes from the current socket (not a replaced one).
    fn is_current(&self, event: &Event) -> bool {
        let inner = self.inner.borrow();
        match (&inner.socket, event.target()) {
            (Some(socket), Some(target)) => js_sys::Object::is(socket, &target),
            _ => false,
        }
    }

    fn on_message(self: &Rc<Self>, event: MessageEvent) {
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
                let new = recorded.is_none_or(|recorded| {
                    let mut inner = self.inner.borrow_mut();
                    let Inner {
                        progress, rooms, ..
                    } = &mut *inner;
                    progress.arrived(&recorded, |stream| follows(rooms, stream))
                });
                // Brought again by a replay (through another stream, or
                // read ahead of the live events).
                if new {
                    self.on_event(&name, data.get());
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
    fn count_missed(&self, streams: impl IntoIterator<Item = Stream>) {
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

    fn on_event(&self, name: &str, data: &str) {
        let calls = match self.dispatcher.borrow_mut().prepare(name, data) {
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

    fn on_close(self: &Rc<Self>, event: CloseEvent) {
        if !self.is_current(&event) {
            return;
        }
        CURRENT_CONNECTION.with(|current| current.set(None));
        let wanted: Vec<RoomName> = {
            let mut inner = self.inner.borrow_mut();
            inner.socket = None;
            inner.welcomed = false;
            inner.rooms.wanted().cloned().collect()
        };
        for room in &wanted {
            self.set_room_status(room, RoomStatus::Joining);
        }
        // A session that ended (log-out) is not a failure: come back at once
        // as whoever the browser is now.
        self.schedule_retry(event.code() == protocol::close::SESSION_ENDED);
    }

    fn schedule_retry(self: &Rc<Self>, immediately: bool) {
        let (delay, attempt) = {
            let mut inner = self.inner.borrow_mut();
            let delay = if immediately {
                Duration::ZERO
            } else {
                inner.backoff.next_delay(js_sys::Math::random())
            };
            (delay, inner.backoff.attempt().max(1))
        };
        self.state.set(ConnectionState::Reconnecting { attempt });
        let runtime = Rc::downgrade(self);
        let retry = set_timeout_with_handle(
            move || {
                if let Some(runtime) = runtime.upgrade() {
                    runtime.inner.borrow_mut().retry = None;
                    runtime.connect();
                }
            },
            delay,
        );
        self.inner.borrow_mut().retry = retry.ok();
    }

    /// Drops the current connection and opens a new one now.
    fn reconnect(self: &Rc<Self>) {
        let (socket, retry) = {
            let mut inner = self.inner.borrow_mut();
            inner.backoff.reset();
            (inner.socket.take(), inner.retry.take())
        };
        if let Some(retry) = retry {
            retry.clear();
        }
        if let Some(socket) = socket {
            // Detached first: its close event must not schedule a retry.
            socket.set_onclose(None);
            let _ = socket.close_with_code(1000);
        }
        CURRENT_CONNECTION.with(|current| current.set(None));
        self.state.set(ConnectionState::Connecting);
        self.connect();
    }

    fn send(&self, frame: &ClientFrame) {
        let inner = self.inner.borrow();
        let (Some(socket), true) = (&inner.socket, inner.welcomed) else {
            // Not connected: rooms are joined on `welcome`.
            return;
        };
        if let Ok(json) = serde_json::to_string(frame) {
            let _ = socket.send_with_str(&json);
        }
    }

    fn subscribe<E, R>(&self, once: bool, handler: impl Fn(E) -> R + 'static) -> HandlerId
    where
        E: RealtimeEvent + Clone,
        R: HandlerOutcome + 'static,
    {
        let id = self.dispatcher.borrow_mut().subscribe(once, handler);
        self.recount();
        id
    }

    fn unsubscribe(&self, id: HandlerId) {
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
    fn want_room(&self, room: &RoomName) -> ArcRwSignal<RoomStatus> {
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
    fn release_room(&self, room: &RoomName) {
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

    fn set_room_status(&self, room: &RoomName, new: RoomStatus) {
        let status = self.inner.borrow().room_status.get(room).cloned();
        if let Some(status) = status {
            status.set(new);
        }
    }
}

impl Inner {
    /// Whether the tab follows `stream`.
    fn follows(&self, stream: &Stream) -> bool {
        follows(&self.rooms, stream)
    }
}

/// Whether a tab that wants `rooms` follows `stream`: every stream but the
/// rooms it let go of.
fn follows(rooms: &RoomBook, stream: &Stream) -> bool {
    match stream {
        Stream::Room(room) => rooms.is_wanted(room),
        Stream::Everyone | Stream::User(_) => true,
    }
}

impl Callbacks {
    fn new(runtime: Weak<Runtime>) -> Self {
        let on_message = runtime.clone();
        let on_close = runtime;
        Self {
            message: Closure::new(move |event: MessageEvent| {
                if let Some(runtime) = on_message.upgrade() {
                    runtime.on_message(event);
                }
            }),
            close: Closure::new(move |event: CloseEvent| {
                if let Some(runtime) = on_close.upgrade() {
                    runtime.on_close(event);
                }
            }),
            // A failed connection is followed by a close event, which does
            // the work.
            error: Closure::new(|_: Event| {}),
        }
    }
}

/// `ws://host/ws` or `wss://host/ws`, for the page's own host.
fn socket_url() -> String {
    let location = window().location();
    let secure = location
        .protocol()
        .is_ok_and(|protocol| protocol == "https:");
    let host = location.host().unwrap_or_default();
    format!(
        "{}://{host}{}",
        if secure { "wss" } else { "ws" },
        protocol::PATH
    )
}

/// A random id for this page's tab. A tab that claimed another's id would
/// only change which events "everyone but the caller" leaves out of its
/// own replays and the other's; ids are random, so it cannot.
fn new_tab_id() -> TabId {
    let half = || (js_sys::Math::random() * f64::from(u32::MAX)) as u64;
    TabId((half() << 32) | half())
}
