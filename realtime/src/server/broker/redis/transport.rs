//! The transport: the task that keeps a process connected to Redis, relays
//! envelopes both ways, and sets the history right after an outage.
//!
//! Every process subscribes to one channel and publishes its envelopes to
//! it: one `PUBLISH` per emit, however many recipients it has, batched
//! into pipelines when emits come faster than Redis answers. Durable events
//! go through the history in Redis instead (`history.rs`): one script call
//! appends each and publishes it.
//!
//! Redis is a help, never a requirement: a process that cannot reach it
//! starts anyway and serves its own connections, and a process that loses
//! it keeps doing so. The task reconnects with capped exponential backoff,
//! and logs how long cross-process delivery was interrupted and how many
//! emits it missed. Once reconnected, it resets in Redis the streams this
//! process wrote meanwhile, catches up on the streams it follows, and
//! resets those whose history went back (Redis restarted from an older
//! snapshot), before it delivers anything newer.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{mpsc, watch},
    time::MissedTickBehavior,
};

use super::{
    super::{Inbox, Placement, catch_up, reconcile, reset_diverged},
    Liveness, RedisBackplane,
    access::Access,
    envelope::Message,
    following::Following,
    history::RedisHistory,
    link::{Link, Outbound},
    nodes::Nodes,
    receive::Receive,
    scripts::Scripts,
    servers::{Commands, Servers},
    subscriber::{Received, Subscriber},
};

/// Most envelopes sent in one pipeline.
const MAX_PIPELINE: usize = 512;
/// Most messages received in one turn of the loop.
const MAX_RECEIVED_AT_ONCE: usize = 256;
/// A session with Redis that lasted this long was healthy: the retries
/// start over from the shortest delay once it ends. One that ended sooner
/// counts as a failed attempt, so a Redis that accepts connections but
/// fails every command (out of memory, a read-only replica) is retried
/// with a growing delay rather than several times a second.
const HEALTHY_SESSION: Duration = Duration::from_secs(1);

/// Where this node stands with Redis when it checks the others' silence.
#[derive(Clone, Copy)]
enum Hearing {
    /// Cut off: it cannot tell who is silent.
    CutOff,
    /// Connected, hearing itself up to its last echo.
    Connected,
    /// Its session just ended.
    Ending,
}

/// Why a connected session with Redis ended.
enum Ended {
    Stopped,
    Lost(String),
}

/// The task's state: see the module documentation.
pub(super) struct Transport {
    pub inbox: Arc<dyn Inbox>,
    pub link: Arc<Link>,
    pub history: Arc<RedisHistory>,
    pub following: Arc<Following>,
    pub nodes: Arc<Nodes>,
    pub settings: RedisBackplane,
    pub queue: mpsc::Receiver<Outbound>,
    /// Shards to subscribe to now (`following.rs`).
    pub requests: mpsc::UnboundedReceiver<u16>,
    pub stopped: watch::Receiver<bool>,
    /// The largest event frame this process sends (and takes).
    pub max_event_bytes: usize,
}

impl Transport {
    pub async fn run(mut self) {
        // Host and port only: the URL may hold a password.
        let url = self.settings.servers.address();
        let mut lost_at: Option<Instant> = None;
        let mut ever_connected = false;
        loop {
            // The backplane's channel, and the shards wanted now.
            let wanted = self.following.wanted(&self.inbox.streams_read_here());
            let shards = &self.following.shards;
            let channels: Vec<String> = std::iter::once(self.settings.channel.clone())
                .chain(wanted.iter().map(|shard| shards.channel_of(*shard)))
                .collect();
            let connected = tokio::select! {
                connected = connect(&self.settings.servers, &channels) => connected,
                _ = self.stopped.changed() => return,
            };
            match connected {
                Ok((publisher, subscriber, scripts)) => {
                    let connected_at = Instant::now();
                    self.following.connected(wanted);
                    self.history
                        .set_connected(Some((publisher.clone(), scripts.clone())));
                    self.link.set_up(true);
                    self.nodes.reconnected();
                    let missed = self.link.take_missed();
                    match (ever_connected, lost_at.take()) {
                        (false, None) => tracing::info!(
                            redis = %url,
                            node = %self.link.node,
                            "connected to Redis: events reach every process"
                        ),
                        (false, Some(since)) => tracing::warn!(
                            redis = %url,
                            node = %self.link.node,
                            waited = ?since.elapsed(),
                            missed_emits = missed,
                            "connected to Redis at last: events reach every process now; \
                             emits made before reached this process only"
                        ),
                        (true, Some(since)) => tracing::warn!(
                            redis = %url,
                            gap = ?since.elapsed(),
                            missed_emits = missed,
                            "reconnected to Redis: events reach every process again; \
                             emits made during the gap reached this process only"
                        ),
                        (true, None) => {}
                    }
                    ever_connected = true;
                    let ended = self.serve(publisher, subscriber, &scripts).await;
                    if connected_at.elapsed() >= HEALTHY_SESSION {
                        self.settings.backoff.reset();
                    }
                    // The time this node heard itself in this session
                    // counts for the nodes away, however short it was.
                    self.forget_silent_nodes(Hearing::Ending);
                    self.following.lost();
                    self.link.set_up(false);
                    self.history.set_connected(None);
                    match ended {
                        Ended::Stopped => return,
                        Ended::Lost(reason) => {
                            tracing::warn!(
                                redis = %url,
                                %reason,
                                "lost Redis: events reach this process's connections only \
                                 until it is back; reconnecting"
                            );
                            lost_at = Some(Instant::now());
                        }
                    }
                }
                Err(error) => {
                    if !ever_connected && self.settings.backoff.attempt() == 0 {
                        tracing::warn!(
                            redis = %url,
                            %error,
                            "Redis is unreachable: serving this process's connections only; \
                             other processes will not see its events until it connects \
                             (retrying in the background)"
                        );
                        lost_at = Some(Instant::now());
                    } else {
                        tracing::debug!(redis = %url, %error, "Redis is still unreachable");
                    }
                }
            }
            // Cut off from the others: what they said about their presence
            // grows old as it would if they had gone silent.
            self.forget_silent_nodes(Hearing::CutOff);
            let delay = self.settings.backoff.next_delay(rand::random());
            if self.wait_or_stop(delay).await {
                return;
            }
        }
    }

    /// Relays envelopes both ways until Redis is lost or the task is told
    /// to stop.
    async fn serve(
        &mut self,
        mut publisher: Commands,
        mut subscriber: Subscriber,
        scripts: &Scripts,
    ) -> Ended {
        // What waited for Redis (ends of sessions) goes first, then the
        // durable streams are set right, then this node's whole presence,
        // which asks the others for theirs. Publications received
        // meanwhile wait in the subscription. (No heartbeat before the
        // `hello`: from a node the others do not know, it would have each
        // of them ask everyone for their presence.)
        if let Err(error) = self.publish_pending(&mut publisher).await {
            return Ended::Lost(error.to_string());
        }
        if let Err(error) = self.reconcile_history(&mut publisher, scripts).await {
            return Ended::Lost(error.to_string());
        }
        self.inbox.joined();

        let liveness = self.settings.liveness;
        let mut heartbeat = tokio::time::interval(liveness.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(MAX_PIPELINE);
        loop {
            tokio::select! {
                received = subscriber.next() => {
                    // With what arrived meanwhile, up to a bound (the rest
                    // of the loop gets its turn).
                    let mut next = Some(received);
                    let mut taken = 0;
                    while let Some(received) = next.take() {
                        match received {
                            Received::Message(payload) => {
                                self.receive().message(payload);
                                // An offset that came again with another
                                // event: the stream starts again now, before
                                // more of the rewound epoch reaches its
                                // readers.
                                if self.inbox.has_diverged()
                                    && let Err(error) =
                                        self.reset_diverged(&mut publisher, scripts).await
                                {
                                    return Ended::Lost(error.to_string());
                                }
                            }
                            Received::Lost(reason) => return Ended::Lost(reason.to_owned()),
                        }
                        taken += 1;
                        if taken < MAX_RECEIVED_AT_ONCE {
                            next = subscriber.try_next();
                        }
                    }
                }
                Some(shard) = self.requests.recv() => {
                    let subscribed = self
                        .subscribe(&mut subscriber, &mut publisher, scripts, shard)
                        .await;
                    if let Err(error) = subscribed {
                        return Ended::Lost(error.to_string());
                    }
                }
                () = self.link.pending_ready() => {
                    if let Err(error) = self.publish_pending(&mut publisher).await {
                        return Ended::Lost(error.to_string());
                    }
                }
                received = self.queue.recv_many(&mut batch, MAX_PIPELINE) => {
                    if received == 0 {
                        return Ended::Stopped;
                    }
                    let ready = self
                        .before_publishing(&mut subscriber, &mut publisher, scripts)
                        .await;
                    let published = match ready {
                        Ok(()) => self.publish_each(&publisher, scripts, &batch).await,
                        Err(error) => Err((vec![true; batch.len()], error)),
                    };
                    let (unsent, lost) = match published {
                        Ok(()) => (vec![false; batch.len()], None),
                        Err((unsent, error)) => (unsent, Some(error)),
                    };
                    // On a cluster, what the nodes that answered took is
                    // placed; only the rest is not.
                    for (item, unsent) in batch.drain(..).zip(unsent) {
                        match item {
                            item if unsent => self.not_published(item),
                            Outbound::Record(mut record) => record.tell(Placement::Shared),
                            Outbound::Publish(_) | Outbound::State(_) => {}
                        }
                    }
                    if let Some(error) = lost {
                        return Ended::Lost(error.to_string());
                    }
                    // Durable events Redis could not take (its queue was
                    // full), or streams whose history went back: they start
                    // again now.
                    if self.inbox.has_diverged()
                        && let Err(error) = self.reset_diverged(&mut publisher, scripts).await
                    {
                        return Ended::Lost(error.to_string());
                    }
                }
                _ = heartbeat.tick() => {
                    // Own messages come back through the subscription; when
                    // they stop, it is dead even if publishing still works.
                    if self.link.since_last_echo() > liveness.timeout {
                        return Ended::Lost("this process no longer hears its own messages".to_owned());
                    }
                    let beat = Outbound::Publish(self.envelope(&Message::Heartbeat));
                    if let Err(error) = self.publish(&mut publisher, scripts, &[beat]).await {
                        return Ended::Lost(error.to_string());
                    }
                    let heard = self
                        .hear_what_is_read(&mut subscriber, &mut publisher, scripts)
                        .await;
                    if let Err(error) = heard {
                        return Ended::Lost(error.to_string());
                    }
                    // Streams written here in a race with the reconnection.
                    if self.inbox.has_diverged()
                        && let Err(error) = self.reset_diverged(&mut publisher, scripts).await
                    {
                        return Ended::Lost(error.to_string());
                    }
                    self.forget_silent_nodes(Hearing::Connected);
                }
                _ = self.stopped.changed() => {
                    // Publish what waits and what is queued (the departures
                    // of the closed connections), then say goodbye.
                    batch.extend(self.link.take_pending().into_iter().map(Outbound::Publish));
                    while let Ok(item) = self.queue.try_recv() {
                        batch.push(item);
                    }
                    batch.push(Outbound::Publish(self.envelope(&Message::Goodbye)));
                    if let Err(error) = self.publish(&mut publisher, scripts, &batch).await {
                        tracing::debug!(%error, "could not say goodbye on the backplane");
                    }
                    return Ended::Stopped;
                }
            }
        }
    }

    /// Subscribes to `shard`'s channel, if it still needs it, and lets
    /// the connections waiting for it go on. What the mirror held of the
    /// shard's streams was not heard until now (kept from before, or
    /// written here while Redis was away, and reset since): it is
    /// forgotten first, so that those connections read Redis instead.
    async fn subscribe(
        &self,
        subscriber: &mut Subscriber,
        publisher: &mut Commands,
        scripts: &Scripts,
        shard: u16,
    ) -> redis::RedisResult<()> {
        if self.following.needs(shard) {
            let shards = &self.following.shards;
            subscriber.subscribe(&[shards.channel_of(shard)]).await?;
            let in_shard = |stream: &crate::Stream| shards.of(stream) == shard;
            self.inbox.forget_unheard(&in_shard);
            // Read streams whose position was learnt before: what was
            // published meanwhile is replayed to their readers (or they are
            // told they may have missed it). Blind ones are read where
            // they stand (`streams/blind.rs`).
            let followed = self.inbox.followed_where(&in_shard);
            catch_up(
                &*self.inbox,
                &mut self.access(publisher, scripts),
                &followed,
            )
            .await?;
            self.following.subscribed(shard);
        }
        Ok(())
    }

    /// What must come before a batch of emits goes out: the shards asked
    /// for before they were queued are subscribed to (a tab the server's
    /// code put in a room, then sent an event at once, gets it), and what
    /// waited is published (it was meant to go first).
    async fn before_publishing(
        &mut self,
        subscriber: &mut Subscriber,
        publisher: &mut Commands,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        while let Ok(shard) = self.requests.try_recv() {
            self.subscribe(subscriber, publisher, scripts, shard)
                .await?;
        }
        self.publish_pending(publisher).await
    }

    /// Subscribes to the shards read here and not heard (a subscription
    /// that failed to come in time), catches up on the blind streams heard
    /// now, and unsubscribes from the shards nobody here has read for a
    /// while; the mirror forgets their streams, which it no longer hears.
    async fn hear_what_is_read(
        &self,
        subscriber: &mut Subscriber,
        publisher: &mut Commands,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        let wanted = self.following.wanted(&self.inbox.streams_read_here());
        for shard in &wanted {
            self.subscribe(subscriber, publisher, scripts, *shard)
                .await?;
        }
        // Streams read blind whose shard is heard now (a connection began
        // to read one as its shard's subscription completed): where they
        // stand is read, and their readers told.
        let blind = self
            .inbox
            .blind_where(&|stream| self.following.hears(stream));
        if !blind.is_empty() {
            let mut access = self.access(publisher, scripts);
            catch_up(&*self.inbox, &mut access, &blind).await?;
        }
        let unwanted = self.following.take_unwanted();
        if unwanted.is_empty() {
            return Ok(());
        }
        let shards = &self.following.shards;
        let channels: Vec<String> = unwanted
            .iter()
            .map(|shard| shards.channel_of(*shard))
            .collect();
        subscriber.unsubscribe(&channels).await?;
        self.inbox
            .forget_unheard(&|stream| unwanted.contains(&shards.of(stream)));
        tracing::debug!(shards = ?unwanted, "no longer read here: unsubscribed");
        Ok(())
    }

    /// The receiving side, for one message.
    fn receive(&self) -> Receive<'_> {
        Receive {
            inbox: &*self.inbox,
            link: &self.link,
            following: &self.following,
            nodes: &self.nodes,
            max_event_bytes: self.max_event_bytes,
        }
    }

    /// Forgets the nodes not heard from for the liveness timeout, and their
    /// presence; when one is lost (`nodes.rs`), the readers here of every
    /// stream are told they may have missed events.
    fn forget_silent_nodes(&self, hearing: Hearing) {
        let Liveness { heartbeat, timeout } = self.settings.liveness;
        let last_echo = Instant::now().checked_sub(self.link.since_last_echo());
        let silent = match (hearing, last_echo) {
            (Hearing::CutOff, _) | (_, None) => self.nodes.forget_silent(timeout, None),
            (Hearing::Connected, last_echo) => self.nodes.forget_silent(timeout, last_echo),
            (Hearing::Ending, Some(last_echo)) => {
                self.nodes.session_ended(timeout, last_echo, heartbeat)
            }
        };
        for node in silent.forgotten {
            self.inbox.node_gone(node);
        }
        if silent.lost {
            tracing::warn!(
                "a server process fell silent without saying goodbye: if it was cut off \
                 from Redis, its events reached its own connections only; every stream's \
                 readers here are told they may have missed some"
            );
            self.inbox.node_lost();
        }
    }

    /// Sets the durable streams right after (re)connecting (see
    /// [`reconcile`]).
    async fn reconcile_history(
        &self,
        publisher: &mut Commands,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        reconcile(&*self.inbox, &mut self.access(publisher, scripts)).await
    }

    /// Has Redis start again, in new epochs, the streams that wait for it.
    async fn reset_diverged(
        &self,
        publisher: &mut Commands,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        reset_diverged(&*self.inbox, &mut self.access(publisher, scripts)).await
    }

    /// The history in Redis, through the publishing connection.
    fn access<'a>(&'a self, publisher: &'a mut Commands, scripts: &'a Scripts) -> Access<'a> {
        Access {
            publisher,
            scripts,
            history: &self.history,
            node: self.link.node,
        }
    }

    /// Sleeps before the next attempt, taking what is queued meanwhile:
    /// events already reached this process's connections; durable events
    /// are placed here. Returns whether the task was told to stop
    /// meanwhile.
    async fn wait_or_stop(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                _ = self.stopped.changed() => return true,
                item = self.queue.recv() => match item {
                    Some(item) => self.not_published(item),
                    None => return true,
                },
            }
        }
    }
}

/// Opens the publishing connection (with the history's scripts loaded)
/// and the subscription to `channels`: the backplane's, and its shards'.
async fn connect(
    servers: &Servers,
    channels: &[String],
) -> redis::RedisResult<(Commands, Subscriber, Scripts)> {
    let publisher = servers.connect().await?;
    let scripts = Scripts::load(&publisher).await?;
    // Subscribed before saying hello, so no answer is missed.
    let subscriber = Subscriber::connect(servers, publisher.is_cluster(), channels).await?;
    Ok((publisher, subscriber, scripts))
}

pub(super) fn timed_out(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis did not answer in time ({what})"),
    ))
}
