//! The runtime in the browser (feature `hydrate`): the tab's WebSocket
//! (this file), what it does with each frame (`frames.rs`), and the tab's
//! subscriptions and rooms (`subscriptions.rs`). `inert.rs` is its server-side
//! twin, with the same API.
//!
//! The runtime lives as long as the page. Its three event callbacks are made
//! once and attached to every socket it opens; a callback ignores events
//! from a socket that has already been replaced.
//!
//! It keeps the tab's progress in each stream (`progress.rs`): every
//! reconnect asks for what followed (everyone's stream and the user's in
//! the upgrade's query, each room in its `join`), an event that comes twice
//! is handed to no handler the second time, and a `discontinuity` raises
//! [`super::Realtime::missed`] for its stream.

mod frames;
mod subscriptions;

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
    protocol::{self, ClientFrame},
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
        self.0
            .try_with_value(|runtime| runtime.recover_from(stream, position));
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
