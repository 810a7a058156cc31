//! Several hubs of one process as if they were processes on one Redis
//! server: a shared history (placing events, reading it, resetting
//! streams) and a channel to each hub, in memory, with the faults a test
//! needs at hand: a hub cut off and back, a hub that lags behind the
//! others (what it hears held, then heard in order), and a history that
//! goes back to an older snapshot. For tests: hub tests of everything that crosses
//! processes run without a Redis server, against the same hub code.
//!
//! It keeps Redis's rules: durable events are placed one at a time and
//! reach every hub (the placing one included) in that order; volatile
//! events, presence and ends of sessions reach the other hubs; a hub cut
//! off misses what is said meanwhile, places its durable events itself,
//! and when it is back sets the history right ([`super::reconcile`]) before
//! it hears anything newer. Ends of sessions said while cut off wait, and
//! a hub that comes back hears those said meanwhile again.
//!
//! This file keeps the hubs' places, what each hears and its broker;
//! `history.rs` keeps the shared history's logs.
//!
//! ```
//! # async fn example() {
//! use realtime::server::{Hub, broker::MemoryBackplane};
//!
//! let backplane = MemoryBackplane::new();
//! let (a, b) = (backplane.node(), backplane.node());
//! let hub_a = Hub::builder().memory_backplane(&a).build();
//! let hub_b = Hub::builder().memory_backplane(&b).build();
//! a.cut();
//! // … hub_a places events alone; hub_b does not hear of them …
//! a.restore().await;
//! # }
//! ```

mod history;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::extract::ws::Utf8Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch};

use self::history::Logs;
use super::{
    Broker, Durable, Fetched, Followed, Inbox, NodeId, Placed, Placement, PresenceNews, Read,
    ReadError, SharedHistory, reconcile, reset_diverged,
};
use crate::{
    server::{SessionKey, TabMark, Target},
    stream::{Epoch, EventId, Position, Stream},
};

/// The most ended sessions told again to a hub that comes back.
const MAX_REPLAYED: usize = 1000;

/// The shared side: create one, and give each hub a [`MemoryNode`] of it.
#[derive(Clone, Default)]
pub struct MemoryBackplane {
    shared: Arc<Mutex<Shared>>,
}

/// One hub's place on a [`MemoryBackplane`]: what the test cuts and
/// restores.
#[derive(Clone)]
pub struct MemoryNode {
    shared: Arc<Mutex<Shared>>,
    node: Arc<Node>,
}

/// The shared history, as Redis saved it: [`MemoryBackplane::save`].
#[derive(Clone)]
pub struct Snapshot(Logs);

#[derive(Default)]
struct Shared {
    logs: Logs,
    nodes: Vec<Arc<Node>>,
    /// Redis's clock, as far as order goes: one tick per placement or read.
    clock: u64,
}

impl Shared {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Places `event` in its streams now (see [`Logs::place`]).
    fn place(&mut self, event: &Durable) -> Vec<(Stream, Position)> {
        let now = self.tick();
        self.logs.place(event, now)
    }

    /// What Redis's `READ` answers now (see [`Logs::read`]).
    fn read(
        &mut self,
        stream: &Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
    ) -> Fetched {
        let now = self.tick();
        self.logs.read(stream, since, since_id, now)
    }
}

/// What one hub hears, in order.
enum Note {
    Deliver {
        target: Target,
        frame: Utf8Bytes,
    },
    Placed {
        target: Target,
        id: EventId,
        except_tab: Option<TabMark>,
        streams: Vec<(Stream, Position)>,
        frame: String,
    },
    Reset {
        stream: Stream,
        position: Position,
    },
    SessionEnded(SessionKey),
    Presence(NodeId, PresenceNews),
    Gone(NodeId),
    /// The hub (re)joins: it sets the history right first.
    Join(oneshot::Sender<()>),
}

struct Node {
    id: NodeId,
    up: AtomicBool,
    /// What the hub hears, until its task takes it.
    queue: mpsc::UnboundedSender<Note>,
    waiting: Mutex<Option<mpsc::UnboundedReceiver<Note>>>,
    /// Whether what the hub hears waits (it lags behind the others).
    held: watch::Sender<bool>,
    /// Ends of sessions said while cut off, told when back.
    pending: Mutex<Vec<SessionKey>>,
}

impl Node {
    fn hear(&self, note: Note) {
        if self.up.load(Ordering::Acquire) {
            let _ = self.queue.send(note);
        }
    }
}

impl MemoryBackplane {
    pub fn new() -> Self {
        Self::default()
    }

    /// A place for one more hub (give it to
    /// [`crate::server::HubBuilder::memory_backplane`]).
    pub fn node(&self) -> MemoryNode {
        let (queue, waiting) = mpsc::unbounded_channel();
        let node = Arc::new(Node {
            id: NodeId::random(),
            up: AtomicBool::new(true),
            queue,
            waiting: Mutex::new(Some(waiting)),
            held: watch::Sender::new(false),
            pending: Mutex::default(),
        });
        MemoryNode {
            shared: Arc::clone(&self.shared),
            node,
        }
    }

    /// The shared history now, as Redis saves a snapshot.
    pub fn save(&self) -> Snapshot {
        Snapshot(self.shared.lock().logs.clone())
    }

    /// The shared history goes back to `snapshot` (Redis restarted from an
    /// older snapshot): every hub loses it a moment and comes back, setting
    /// its history right before it hears anything newer. Returns once they
    /// all have.
    pub async fn restart_from(&self, snapshot: &Snapshot) {
        let joins: Vec<oneshot::Receiver<()>> = {
            let mut shared = self.shared.lock();
            shared.logs = snapshot.0.clone();
            // Under the lock: nothing placed from now on is heard before.
            shared
                .nodes
                .iter()
                .filter(|node| node.up.load(Ordering::Acquire))
                .filter_map(|node| ask_to_join(node))
                .collect()
        };
        for joined in joins {
            let _ = joined.await;
        }
    }
}

impl MemoryNode {
    /// Cuts the hub off: it misses what is said meanwhile, and places its
    /// durable events itself.
    pub fn cut(&self) {
        self.node.up.store(false, Ordering::Release);
    }

    /// The hub comes back: it tells the ends of sessions it saw meanwhile,
    /// sets its history right and says hello. Returns once it has.
    pub async fn restore(&self) {
        let joined = {
            // Under the lock: nothing placed from now on is heard before
            // the hub has set its history right, as with Redis, whose
            // publications wait in the new subscription.
            let _shared = self.shared.lock();
            self.node.up.store(true, Ordering::Release);
            ask_to_join(&self.node)
        };
        if let Some(joined) = joined {
            let _ = joined.await;
        }
    }

    /// The hub lags: what it hears waits, in order, until
    /// [`MemoryNode::release`]. It still places events and reads the
    /// shared history, as a process whose subscription is slow does.
    /// Release it before [`MemoryNode::restore`] or
    /// [`MemoryBackplane::restart_from`]: they wait for the hub to hear
    /// them.
    pub fn hold(&self) {
        self.node.held.send_replace(true);
    }

    /// The hub hears what waited, in order, and what comes next.
    pub fn release(&self) {
        self.node.held.send_replace(false);
    }

    /// The hub's broker.
    pub(crate) fn broker(&self) -> MemoryBroker {
        MemoryBroker(self.clone())
    }

    fn others(&self) -> Vec<Arc<Node>> {
        let shared = self.shared.lock();
        shared
            .nodes
            .iter()
            .filter(|node| node.id != self.node.id)
            .cloned()
            .collect()
    }

    fn is_up(&self) -> bool {
        self.node.up.load(Ordering::Acquire)
    }
}

/// Has a hub's task set its history right and say hello; the receiver
/// hears when it has.
fn ask_to_join(node: &Node) -> Option<oneshot::Receiver<()>> {
    let (done, joined) = oneshot::channel();
    node.queue.send(Note::Join(done)).ok()?;
    Some(joined)
}

/// A hub's broker on a [`MemoryBackplane`].
pub(crate) struct MemoryBroker(MemoryNode);

impl Broker for MemoryBroker {
    fn start(&self, inbox: Arc<dyn Inbox>) {
        let Some(queue) = self.0.node.waiting.lock().take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("a hub on a memory backplane was built outside a Tokio runtime");
            return;
        };
        self.0.shared.lock().nodes.push(Arc::clone(&self.0.node));
        runtime.spawn(hear(self.0.clone(), queue, inbox));
        let _ = self.0.node.queue.send(Note::Join(oneshot::channel().0));
    }

    fn shares_history(&self) -> bool {
        true
    }

    fn place(&self, mut event: Box<Durable>) -> Result<(), Box<Durable>> {
        if !self.0.is_up() {
            return Err(event);
        }
        let mut shared = self.0.shared.lock();
        let positions = shared.place(&event);
        // Under the lock: every hub hears the events in the order placed.
        for node in &shared.nodes {
            node.hear(Note::Placed {
                target: event.target.clone(),
                id: event.id,
                except_tab: event.except_tab,
                streams: positions.clone(),
                frame: event.frame.clone(),
            });
        }
        drop(shared);
        event.tell(Placement::Shared);
        Ok(())
    }

    fn publish(&self, target: &Target, frame: &Utf8Bytes) {
        if self.0.is_up() {
            for node in self.0.others() {
                node.hear(Note::Deliver {
                    target: target.clone(),
                    frame: frame.clone(),
                });
            }
        }
    }

    fn can_read(&self) -> bool {
        self.0.is_up()
    }

    fn hears(&self, _stream: &Stream) -> bool {
        self.0.is_up()
    }

    fn read<'a>(
        &'a self,
        stream: &'a Stream,
        since: Option<Position>,
        since_id: Option<EventId>,
    ) -> BoxFuture<'a, Result<Fetched, ReadError>> {
        let read = if self.0.is_up() {
            Ok(self.0.shared.lock().read(stream, since, since_id))
        } else {
            Err(ReadError("cut off from the memory backplane".to_owned()))
        };
        Box::pin(async move { read })
    }

    fn announce(&self, news: PresenceNews) {
        if self.0.is_up() {
            for node in self.0.others() {
                node.hear(Note::Presence(self.0.node.id, news.clone()));
            }
        }
    }

    fn end_session(&self, session: &SessionKey) {
        if !self.0.is_up() {
            self.0.node.pending.lock().push(session.clone());
            return;
        }
        for node in self.0.others() {
            node.hear(Note::SessionEnded(session.clone()));
        }
    }

    fn connected(&self) -> Option<bool> {
        Some(self.0.is_up())
    }

    fn peers(&self) -> usize {
        if !self.0.is_up() {
            return 0;
        }
        self.0
            .others()
            .iter()
            .filter(|node| node.up.load(Ordering::Acquire))
            .count()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        let me = self.0.node.id;
        let others = self.0.others();
        self.0.shared.lock().nodes.retain(|node| node.id != me);
        for node in others {
            node.hear(Note::Gone(me));
        }
        Box::pin(async {})
    }
}

/// A hub's task: hands what it hears to its inbox, in order.
async fn hear(node: MemoryNode, mut queue: mpsc::UnboundedReceiver<Note>, inbox: Arc<dyn Inbox>) {
    let mut held = node.node.held.subscribe();
    while let Some(note) = queue.recv().await {
        // The sender lives in the node this task holds: never closed.
        let _ = held.wait_for(|held| !held).await;
        match note {
            Note::Deliver { target, frame } => inbox.deliver(&target, frame),
            Note::Placed {
                target,
                id,
                except_tab,
                streams,
                frame,
            } => {
                inbox.placed(Placed {
                    target: &target,
                    id,
                    except_tab,
                    streams,
                    frame: &frame,
                });
                // An offset that came again with another event: the stream
                // starts again now.
                if inbox.has_diverged()
                    && let Err(error) = reset_diverged(&*inbox, &mut Access(&node)).await
                {
                    tracing::warn!(%error, "could not reset streams");
                }
            }
            Note::Reset { stream, position } => inbox.reset(&stream, position),
            Note::SessionEnded(session) => inbox.session_ended(&session),
            Note::Presence(from, news) => {
                let hello = matches!(news, PresenceNews::Hello { .. });
                inbox.presence(from, news);
                if hello {
                    // The newcomer may have missed ends of sessions.
                    let sessions = inbox.recently_ended_sessions(MAX_REPLAYED);
                    let newcomer = node.others().into_iter().find(|other| other.id == from);
                    for session in sessions {
                        if let Some(newcomer) = &newcomer {
                            newcomer.hear(Note::SessionEnded(session));
                        }
                    }
                }
            }
            Note::Gone(from) => inbox.node_gone(from),
            Note::Join(done) => {
                let pending = std::mem::take(&mut *node.node.pending.lock());
                for session in pending {
                    for other in node.others() {
                        other.hear(Note::SessionEnded(session.clone()));
                    }
                }
                let mut history = Access(&node);
                if let Err(error) = reconcile(&*inbox, &mut history).await {
                    tracing::warn!(%error, "could not set the history right");
                }
                inbox.joined();
                let _ = done.send(());
            }
        }
    }
}

/// The shared history, as one hub's reconciliation reads and resets it.
struct Access<'a>(&'a MemoryNode);

impl SharedHistory for Access<'_> {
    type Error = String;

    fn reset<'a>(
        &'a mut self,
        streams: &'a [(Stream, Option<Epoch>)],
    ) -> BoxFuture<'a, Result<(), String>> {
        let shared = &self.0.shared;
        let mut shared = shared.lock();
        for (stream, only_in) in streams {
            // Reset once, by whichever hub comes first.
            let Some(position) = shared.logs.reset(stream, *only_in) else {
                continue;
            };
            for node in &shared.nodes {
                node.hear(Note::Reset {
                    stream: stream.clone(),
                    position,
                });
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn read_many<'a>(
        &'a mut self,
        wanted: &'a [Followed],
    ) -> BoxFuture<'a, Result<Vec<Read>, String>> {
        let mut shared = self.0.shared.lock();
        let read = wanted
            .iter()
            .map(|(stream, since, id)| Ok(shared.read(stream, *since, *id)))
            .collect();
        Box::pin(async { Ok(read) })
    }
}
