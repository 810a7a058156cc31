//! From an event frame to the handlers subscribed to its type.
//!
//! The frame's data is decoded once per frame, into the type the
//! subscribers asked for, and each handler gets its own copy. Preparing the
//! calls and making them are separate steps: the caller makes each call
//! isolated from the others (in the browser, in its own microtask), so one
//! handler that panics or returns an error does not stop the rest, and no
//! borrow of the dispatcher is held while handlers run (a handler may
//! subscribe or unsubscribe). A call whose subscription was removed between
//! the two steps (its component unmounted meanwhile) does nothing.

use std::{any::Any, cell::Cell, collections::HashMap, fmt, rc::Rc};

use crate::Event;

/// Identifies one subscription. Ids grow: a handler subscribed after
/// another has a larger one ([`Dispatcher::newest`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(u64);

#[cfg(test)]
impl HandlerId {
    /// The `n`-th subscription's id.
    pub(crate) fn nth(n: u64) -> Self {
        Self(n)
    }
}

/// What a handler may return: nothing, or a `Result` whose error is
/// reported (to the console, in the browser) without stopping other
/// handlers.
pub trait HandlerOutcome {
    fn into_outcome(self) -> Result<(), String>;
}

impl HandlerOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> HandlerOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|error| error.to_string())
    }
}

/// One handler call, ready to run.
pub struct Call {
    pub handler: HandlerId,
    pub event: &'static str,
    /// Cleared when the subscription is removed.
    active: Rc<Cell<bool>>,
    run: Box<dyn FnOnce() -> Result<(), String>>,
}

impl Call {
    /// Runs the handler, unless its subscription has been removed since the
    /// call was prepared. A returned error is the handler's own failure.
    pub fn run(self) -> Result<(), String> {
        if self.active.get() {
            (self.run)()
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("handler", &self.handler)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// An event frame could not be handed to its subscribers.
#[derive(Debug)]
pub struct DecodeError {
    pub event: String,
    pub error: serde_json::Error,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} does not match its type: {}",
            self.event, self.error
        )
    }
}

type Handler<E> = Rc<dyn Fn(E) -> Result<(), String>>;

struct Subscriber<E> {
    id: HandlerId,
    once: bool,
    active: Rc<Cell<bool>>,
    handler: Handler<E>,
}

/// The subscribers of one event type, behind a type-erased interface.
trait Topic {
    /// The calls for one frame to the handlers subscribed after `after`,
    /// and the `once` subscriptions it used up.
    fn prepare(
        &mut self,
        data: &str,
        after: HandlerId,
    ) -> Result<(Vec<Call>, Vec<HandlerId>), serde_json::Error>;
    fn remove(&mut self, id: HandlerId) -> bool;
    fn is_empty(&self) -> bool;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

struct Subscribers<E: Event> {
    list: Vec<Subscriber<E>>,
}

impl<E: Event + Clone> Topic for Subscribers<E> {
    fn prepare(
        &mut self,
        data: &str,
        after: HandlerId,
    ) -> Result<(Vec<Call>, Vec<HandlerId>), serde_json::Error> {
        let event: E = serde_json::from_str(data)?;
        let called = |subscriber: &Subscriber<E>| subscriber.id > after;
        let calls = self
            .list
            .iter()
            .filter(|subscriber| called(subscriber))
            .map(|subscriber| {
                let handler = Rc::clone(&subscriber.handler);
                let event = event.clone();
                Call {
                    handler: subscriber.id,
                    event: E::NAME,
                    active: Rc::clone(&subscriber.active),
                    run: Box::new(move || handler(event)),
                }
            })
            .collect();
        // A `once` handler is gone before it even runs: a second frame that
        // arrives first does not call it again.
        let used_up = self
            .list
            .iter()
            .filter(|subscriber| subscriber.once && called(subscriber))
            .map(|subscriber| subscriber.id)
            .collect();
        self.list
            .retain(|subscriber| !(subscriber.once && called(subscriber)));
        Ok((calls, used_up))
    }

    fn remove(&mut self, id: HandlerId) -> bool {
        let before = self.list.len();
        self.list.retain(|subscriber| subscriber.id != id);
        self.list.len() != before
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Every subscription of one tab.
#[derive(Default)]
pub struct Dispatcher {
    topics: HashMap<&'static str, Box<dyn Topic>>,
    topic_of: HashMap<HandlerId, &'static str>,
    /// Every subscription not yet removed, including `once` handlers whose
    /// call is prepared but not yet made.
    active: HashMap<HandlerId, Rc<Cell<bool>>>,
    next_id: u64,
}

impl Dispatcher {
    /// Subscribes `handler` to events of type `E`; with `once`, only to the
    /// next one.
    pub fn subscribe<E, R>(&mut self, once: bool, handler: impl Fn(E) -> R + 'static) -> HandlerId
    where
        E: Event + Clone,
        R: HandlerOutcome,
    {
        self.next_id += 1;
        let id = HandlerId(self.next_id);
        let active = Rc::new(Cell::new(true));
        let subscriber = Subscriber {
            id,
            once,
            active: Rc::clone(&active),
            handler: Rc::new(move |event: E| handler(event).into_outcome()),
        };
        let topic = self
            .topics
            .entry(E::NAME)
            .or_insert_with(|| Box::new(Subscribers::<E> { list: Vec::new() }));
        match topic.as_any_mut().downcast_mut::<Subscribers<E>>() {
            Some(subscribers) => subscribers.list.push(subscriber),
            // Two event types with one wire name: the first keeps it.
            None => {
                debug_assert!(false, "two event types are named {:?}", E::NAME);
                return id;
            }
        }
        self.topic_of.insert(id, E::NAME);
        self.active.insert(id, active);
        id
    }

    /// Removes a subscription: it is not called again, not even for an
    /// event whose calls were already prepared. Returns whether it existed.
    pub fn unsubscribe(&mut self, id: HandlerId) -> bool {
        let Some(active) = self.active.remove(&id) else {
            return false;
        };
        active.set(false);
        let Some(name) = self.topic_of.remove(&id) else {
            // A `once` handler already used up.
            return true;
        };
        let Some(topic) = self.topics.get_mut(name) else {
            return false;
        };
        let removed = topic.remove(id);
        if topic.is_empty() {
            self.topics.remove(name);
        }
        removed
    }

    /// The calls an event frame calls for: one per subscriber of its type,
    /// none if nobody subscribed. The data is decoded once.
    pub fn prepare(&mut self, name: &str, data: &str) -> Result<Vec<Call>, DecodeError> {
        self.prepare_after(name, data, HandlerId(0))
    }

    /// The newest subscription's id (or one before every id, if none was
    /// ever made): an event handed on now reaches it and those before it.
    pub fn newest(&self) -> HandlerId {
        HandlerId(self.next_id)
    }

    /// The calls an event frame calls for among the handlers subscribed
    /// after `after` only: those that did not have it when it was handed
    /// on.
    pub fn prepare_after(
        &mut self,
        name: &str,
        data: &str,
        after: HandlerId,
    ) -> Result<Vec<Call>, DecodeError> {
        let Some(topic) = self.topics.get_mut(name) else {
            return Ok(Vec::new());
        };
        let (calls, used_up) = topic.prepare(data, after).map_err(|error| DecodeError {
            event: name.to_owned(),
            error,
        })?;
        if topic.is_empty() {
            self.topics.remove(name);
        }
        for id in used_up {
            self.topic_of.remove(&id);
        }
        Ok(calls)
    }

    /// How many subscriptions exist, for tests and debugging.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

/// Runs each call on its own, catching panics, and reports the failures.
/// Where panics unwind (tests, native builds) this is the isolation; in the
/// browser each call runs in its own microtask instead (see `socket`).
pub fn run_each_catching(
    calls: Vec<Call>,
    mut report: impl FnMut(HandlerId, &'static str, String),
) {
    for call in calls {
        let (handler, event) = (call.handler, call.event);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.run())) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => report(handler, event, error),
            Err(panic) => report(handler, event, panic_message(&*panic)),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!("panicked: {message}")
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        n: u32,
    }
    impl Event for Ping {
        const NAME: &'static str = "Ping";
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Pong;
    impl Event for Pong {
        const NAME: &'static str = "Pong";
    }

    type Seen = Rc<RefCell<Vec<String>>>;

    /// Records what handlers saw.
    fn recorder() -> (Seen, impl Fn(&str, u32) + Clone) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let record = {
            let seen = Rc::clone(&seen);
            move |who: &str, n: u32| seen.borrow_mut().push(format!("{who}:{n}"))
        };
        (seen, record)
    }

    fn dispatch(dispatcher: &mut Dispatcher, name: &str, data: &str) -> Vec<String> {
        let mut failures = Vec::new();
        let calls = dispatcher.prepare(name, data).unwrap();
        run_each_catching(calls, |_, event, error| {
            failures.push(format!("{event}: {error}"))
        });
        failures
    }

    #[test]
    fn every_subscriber_of_the_type_gets_the_event() {
        let mut dispatcher = Dispatcher::default();
        let (seen, record) = recorder();
        let (a, b) = (record.clone(), record.clone());
        dispatcher.subscribe(false, move |ping: Ping| a("a", ping.n));
        dispatcher.subscribe(false, move |ping: Ping| b("b", ping.n));
        dispatcher.subscribe(false, move |_: Pong| record("pong", 0));

        assert!(dispatch(&mut dispatcher, "Ping", r#"{"n":7}"#).is_empty());
        assert_eq!(*seen.borrow(), ["a:7", "b:7"]);
    }

    #[test]
    fn events_nobody_subscribed_to_are_ignored() {
        let mut dispatcher = Dispatcher::default();
        assert!(dispatcher.prepare("Unknown", "{}").unwrap().is_empty());
    }

    #[test]
    fn data_that_does_not_fit_the_type_is_an_error_not_a_panic() {
        let mut dispatcher = Dispatcher::default();
        dispatcher.subscribe(false, |_: Ping| ());
        let error = dispatcher
            .prepare("Ping", r#"{"n":"seven"}"#)
            .err()
            .unwrap();
        assert_eq!(error.event, "Ping");
        assert!(dispatcher.prepare("Ping", "not json").is_err());
    }

    #[test]
    fn unsubscribing_stops_delivery() {
        let mut dispatcher = Dispatcher::default();
        let (seen, record) = recorder();
        let id = dispatcher.subscribe(false, move |ping: Ping| record("a", ping.n));
        assert_eq!(dispatcher.len(), 1);
        assert!(dispatcher.unsubscribe(id));
        assert!(!dispatcher.unsubscribe(id));
        assert!(dispatcher.is_empty());
        dispatch(&mut dispatcher, "Ping", r#"{"n":1}"#);
        assert!(seen.borrow().is_empty());
    }

    #[test]
    fn a_once_handler_runs_for_the_next_event_only() {
        let mut dispatcher = Dispatcher::default();
        let (seen, record) = recorder();
        let id = dispatcher.subscribe(true, move |ping: Ping| record("once", ping.n));

        let first = dispatcher.prepare("Ping", r#"{"n":1}"#).unwrap();
        // The second frame is prepared before the first call has run.
        let second = dispatcher.prepare("Ping", r#"{"n":2}"#).unwrap();
        run_each_catching(first, |_, _, _| {});
        run_each_catching(second, |_, _, _| {});
        assert_eq!(*seen.borrow(), ["once:1"]);
        // Removing it afterwards (its component unmounts) is still fine.
        assert!(dispatcher.unsubscribe(id));
        assert!(dispatcher.is_empty());
    }

    #[test]
    fn an_event_handed_on_again_reaches_only_the_handlers_subscribed_since() {
        let mut dispatcher = Dispatcher::default();
        let (seen, record) = recorder();
        let (old, new, once) = (record.clone(), record.clone(), record);
        dispatcher.subscribe(false, move |ping: Ping| old("old", ping.n));
        let handed_on = dispatcher.newest();
        dispatcher.subscribe(false, move |ping: Ping| new("new", ping.n));
        dispatcher.subscribe(true, move |ping: Ping| once("once", ping.n));

        let calls = dispatcher
            .prepare_after("Ping", r#"{"n":3}"#, handed_on)
            .unwrap();
        run_each_catching(calls, |_, _, error| panic!("{error}"));
        assert_eq!(*seen.borrow(), ["new:3", "once:3"]);
        // The `once` handler is used up; the old one still hears the next.
        dispatch(&mut dispatcher, "Ping", r#"{"n":4}"#);
        assert_eq!(*seen.borrow(), ["new:3", "once:3", "old:4", "new:4"]);
    }

    #[test]
    fn a_call_prepared_before_unsubscribing_does_nothing() {
        let mut dispatcher = Dispatcher::default();
        let (seen, record) = recorder();
        let (kept, dropped) = (record.clone(), record);
        dispatcher.subscribe(false, move |ping: Ping| kept("kept", ping.n));
        let gone = dispatcher.subscribe(false, move |ping: Ping| dropped("gone", ping.n));

        let calls = dispatcher.prepare("Ping", r#"{"n":5}"#).unwrap();
        // The component unmounts before the microtasks run.
        dispatcher.unsubscribe(gone);
        run_each_catching(calls, |_, _, error| panic!("{error}"));
        assert_eq!(*seen.borrow(), ["kept:5"]);
    }

    #[test]
    fn a_panicking_or_failing_handler_does_not_stop_the_others() {
        let mut dispatcher = Dispatcher::default();
        let (seen, record) = recorder();
        let (before, after) = (record.clone(), record);
        dispatcher.subscribe(false, move |ping: Ping| before("before", ping.n));
        dispatcher.subscribe(false, |_: Ping| -> () { panic!("boom") });
        dispatcher.subscribe(false, |_: Ping| Err::<(), _>("no luck"));
        dispatcher.subscribe(false, move |ping: Ping| after("after", ping.n));

        let failures = dispatch(&mut dispatcher, "Ping", r#"{"n":3}"#);
        assert_eq!(*seen.borrow(), ["before:3", "after:3"]);
        assert_eq!(failures, ["Ping: panicked: boom", "Ping: no luck"]);
        // Still subscribed: the next event reaches everyone again.
        dispatch(&mut dispatcher, "Ping", r#"{"n":4}"#);
        assert_eq!(seen.borrow().len(), 4);
    }

    #[test]
    fn a_handler_may_unsubscribe_while_events_are_dispatched() {
        let dispatcher = Rc::new(RefCell::new(Dispatcher::default()));
        let own_id = Rc::new(RefCell::new(None));
        let id = {
            let (dispatcher, own_id) = (Rc::clone(&dispatcher), Rc::clone(&own_id));
            dispatcher
                .clone()
                .borrow_mut()
                .subscribe(false, move |_: Ping| {
                    if let Some(id) = own_id.borrow_mut().take() {
                        dispatcher.borrow_mut().unsubscribe(id);
                    }
                })
        };
        *own_id.borrow_mut() = Some(id);
        // No borrow is held while the call runs.
        let calls = dispatcher
            .borrow_mut()
            .prepare("Ping", r#"{"n":1}"#)
            .unwrap();
        run_each_catching(calls, |_, _, error| panic!("{error}"));
        assert!(dispatcher.borrow().is_empty());
    }
}
