//! The backplane over Redis pub/sub.
//!
//! Every process subscribes to one channel and publishes its envelopes to
//! it: one `PUBLISH` per emit, however many recipients it has, batched
//! into pipelines when emits come faster than Redis answers.
//!
//! Durable events go through the history in Redis instead
//! (`redis_history.rs`): one script call appends each and publishes it.
//!
//! Redis is a help, never a requirement: a process that cannot reach it
//! starts anyway and serves its own connections, and a process that loses
//! it keeps doing so. A background task reconnects with capped exponential
//! backoff, and logs how long cross-process delivery was interrupted and
//! how many emits it missed. Once reconnected, it resets in Redis the
//! streams this process wrote meanwhile and catches up on the streams it
//! follows (`server/durable.rs`), before it delivers anything newer.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::{AsyncConnectionConfig, Client, Value, aio::MultiplexedConnection};
use thiserror::Error;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{MissedTickBehavior, timeout},
};

use super::{
    Link, Liveness, Message, Outbound,
    redis_history::{RedisHistory, Scripts},
};
use crate::{backoff::Backoff, server::Hub};

/// The channel used unless [`RedisBackplane::channel`] says otherwise.
/// Its name carries the envelope format's version.
pub const DEFAULT_CHANNEL: &str = "realtime.v1";

/// Envelopes waiting to be published, at most. When Redis cannot keep up,
/// further emits reach this process's connections only (and are counted).
const OUTBOUND_CAPACITY: usize = 16 * 1024;
/// Most envelopes sent in one pipeline.
const MAX_PIPELINE: usize = 512;
/// Most streams read in one pipeline when catching up after a reconnection.
const CATCH_UP_READS: usize = 16;
/// How long connecting, and each command, may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

/// The backplane could not be set up.
#[derive(Debug, Error)]
pub enum BackplaneError {
    /// (The URL is not repeated: it may hold a password.)
    #[error("REDIS_URL is not a valid Redis URL (redis://host:port/): {source}")]
    InvalidUrl { source: redis::RedisError },
    #[error("this hub already has a backplane")]
    AlreadyAttached,
}

/// Settings of a Redis backplane, before it starts.
#[derive(Debug)]
pub struct RedisBackplane {
    client: Client,
    channel: String,
    liveness: Liveness,
    backoff: Backoff,
}

impl RedisBackplane {
    /// Checks the URL (`redis://host:port/`, `rediss://…` for TLS is not
    /// built in). Nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, BackplaneError> {
        let client = Client::open(url).map_err(|source| BackplaneError::InvalidUrl { source })?;
        Ok(Self {
            client,
            channel: DEFAULT_CHANNEL.to_owned(),
            liveness: Liveness::default(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(10)),
        })
    }

    /// The pub/sub channel: processes on the same channel act as one hub.
    /// Give each application its own when they share a Redis server.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How often processes say they are alive, and how long before a
    /// silent one's presence is forgotten.
    pub fn liveness(mut self, liveness: Liveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// How long to wait between reconnection attempts.
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Attaches the backplane to `hub` and starts its background task,
    /// which connects (and reconnects) by itself. Returns at once: until
    /// Redis answers, emits reach this process's connections only.
    pub fn start(self, hub: &Hub) -> Result<BackplaneHandle, BackplaneError> {
        let (outbound, queue) = mpsc::channel(OUTBOUND_CAPACITY);
        let history = Arc::new(RedisHistory::new(
            self.channel.clone(),
            hub.config().history_limits(),
        ));
        let link = hub
            .attach(
                outbound,
                Arc::clone(&history) as Arc<dyn super::HistoryStore>,
            )
            .ok_or(BackplaneError::AlreadyAttached)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(
            Transport {
                hub: hub.clone(),
                link: Arc::clone(&link),
                history,
                settings: self,
                queue,
                stopped,
            }
            .run(),
        );
        Ok(BackplaneHandle { stop, task })
    }
}

/// The running backplane of a hub. It runs as long as this handle is kept;
/// dropping it stops the background task. [`Hub::backplane_connected`]
/// tells whether Redis is connected.
pub struct BackplaneHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl BackplaneHandle {
    /// Says goodbye to the other processes (so they forget this one's
    /// presence at once) and stops. Call it after closing the connections
    /// on shutdown, so their departures are published first.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if timeout(REDIS_TIMEOUT, &mut self.task).await.is_err() {
            tracing::warn!("the Redis backplane did not stop in time: stopped without a goodbye");
            self.task.abort();
        }
    }
}

/// Why a connected session with Redis ended.
enum Ended {
    Stopped,
    Lost(String),
}

struct Transport {
    hub: Hub,
    link: Arc<Link>,
    history: Arc<RedisHistory>,
    settings: RedisBackplane,
    queue: mpsc::Receiver<Outbound>,
    stopped: watch::Receiver<bool>,
}

impl Transport {
    async fn run(mut self) {
        // Host and port only: the URL may hold a password.
        let url = self
            .settings
            .client
            .get_connection_info()
            .addr()
            .to_string();
        let mut lost_at: Option<Instant> = None;
        let mut ever_connected = false;
        loop {
            let connected = tokio::select! {
                connected = connect(&self.settings.client, &self.settings.channel) => connected,
                _ = self.stopped.changed() => return,
            };
            match connected {
                Ok((publisher, subscription, scripts)) => {
                    self.settings.backoff.reset();
                    self.history
                        .set_connected(Some((publisher.clone(), scripts.clone())));
                    self.link.set_up(true);
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
                    let ended = self.serve(publisher, subscription, &scripts).await;
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
            if let Some(deadline) = Instant::now().checked_sub(self.settings.liveness.timeout) {
                self.hub.forget_silent_nodes(deadline);
            }
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
        mut publisher: MultiplexedConnection,
        subscription: redis::aio::PubSub,
        scripts: &Scripts,
    ) -> Ended {
        let mut messages = subscription.into_on_message();
        // What waited for Redis (ends of sessions) goes first, then the
        // durable streams are set right, then this node's whole presence,
        // which asks the others for theirs. Publications received
        // meanwhile wait in the subscription.
        if let Err(error) = self.publish_pending(&mut publisher).await {
            return Ended::Lost(error.to_string());
        }
        if let Err(error) = self.reconcile_history(&mut publisher, scripts).await {
            return Ended::Lost(error.to_string());
        }
        self.hub.say_hello();

        let liveness = self.settings.liveness;
        let mut heartbeat = tokio::time::interval(liveness.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(MAX_PIPELINE);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => {
                        let payload = Bytes::copy_from_slice(message.get_payload_bytes());
                        self.hub.receive(&self.link, payload);
                    }
                    None => return Ended::Lost("the subscription closed".to_owned()),
                },
                () = self.link.pending_ready() => {
                    if let Err(error) = self.publish_pending(&mut publisher).await {
                        return Ended::Lost(error.to_string());
                    }
                }
                received = self.queue.recv_many(&mut batch, MAX_PIPELINE) => {
                    if received == 0 {
                        return Ended::Stopped;
                    }
                    // Anything that waited was meant to go before these.
                    let published = match self.publish_pending(&mut publisher).await {
                        Ok(()) => self.publish(&mut publisher, scripts, &batch).await,
                        Err(error) => Err(error),
                    };
                    if let Err(error) = published {
                        for item in batch.drain(..) {
                            self.not_published(item);
                        }
                        return Ended::Lost(error.to_string());
                    }
                    for item in batch.drain(..) {
                        if let Outbound::Record(record) = item
                            && let Some(placed) = record.placed
                        {
                            let _ = placed.send(crate::server::Placement::Shared);
                        }
                    }
                    // Durable events Redis could not take (its queue was
                    // full): their streams start again now.
                    if self.hub.has_diverged_streams()
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
                    // Streams written here in a race with the reconnection.
                    if self.hub.has_diverged_streams()
                        && let Err(error) = self.reset_diverged(&mut publisher, scripts).await
                    {
                        return Ended::Lost(error.to_string());
                    }
                    let deadline = Instant::now().checked_sub(liveness.timeout);
                    if let Some(deadline) = deadline {
                        self.hub.forget_silent_nodes(deadline);
                    }
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

    /// Publishes what waited, oldest first. On failure it is put back.
    async fn publish_pending(
        &self,
        publisher: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let pending = self.link.take_pending();
        if pending.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        for envelope in &pending {
            pipeline
                .publish(&self.settings.channel, envelope.as_ref())
                .ignore();
        }
        let published = pipeline.exec_async(publisher).await;
        if published.is_err() {
            self.link.put_back(pending);
        }
        published
    }

    fn envelope(&self, message: &Message) -> Bytes {
        super::Envelope::encode(self.link.node, message)
    }

    /// Publishes envelopes, and has Redis place durable events, in one
    /// round trip.
    async fn publish(
        &self,
        publisher: &mut MultiplexedConnection,
        scripts: &Scripts,
        items: &[Outbound],
    ) -> redis::RedisResult<()> {
        let channel = self.settings.channel.as_str();
        let mut pipeline = redis::pipe();
        for item in items {
            match item {
                Outbound::Publish(envelope) => {
                    pipeline.publish(channel, envelope.as_ref()).ignore();
                }
                Outbound::Record(record) => {
                    let append = self.history.append(scripts, self.link.node, record);
                    pipeline.add_command(append).ignore();
                }
            }
        }
        pipeline.exec_async(publisher).await
    }

    /// What could not be sent: an event reached this process's
    /// connections only (counted); a durable event is placed here.
    fn not_published(&self, item: Outbound) {
        match item {
            Outbound::Publish(_) => self.link.count_missed(),
            Outbound::Record(record) => {
                self.hub.record_instead(*record);
            }
        }
    }

    /// Sets the durable streams right after (re)connecting: the streams
    /// written here while Redis was away start again everywhere, and the
    /// streams followed here get what the other processes placed
    /// meanwhile (or a discontinuity, if Redis no longer has it).
    async fn reconcile_history(
        &self,
        publisher: &mut MultiplexedConnection,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        self.reset_diverged(publisher, scripts).await?;
        let followed = self.hub.followed_streams();
        // A few reads per round trip: each may bring a recovery's worth of
        // events, and the connection's timeout covers the whole pipeline.
        for streams in followed.chunks(CATCH_UP_READS) {
            let mut pipeline = redis::pipe();
            for (stream, position) in streams {
                pipeline.add_command(self.history.read_command(scripts, stream, Some(*position)));
            }
            let replies: Vec<Value> = pipeline.query_async(&mut *publisher).await?;
            for ((stream, position), reply) in streams.iter().zip(replies) {
                match self.history.parse_read(stream, Some(*position), reply) {
                    Ok(fetched) => self.hub.catch_up(stream, *position, fetched),
                    Err(error) => {
                        // Its readers cannot be told what they missed: they
                        // are told they may have.
                        tracing::warn!(%stream, %error, "could not catch up on a stream");
                        self.hub.reset_stream(stream, *position);
                    }
                }
            }
        }
        Ok(())
    }

    /// Has Redis start again, in a new epoch, the streams this process
    /// wrote with positions of its own; every process tells their readers.
    async fn reset_diverged(
        &self,
        publisher: &mut MultiplexedConnection,
        scripts: &Scripts,
    ) -> redis::RedisResult<()> {
        let diverged = self.hub.take_diverged_streams();
        for (index, streams) in diverged.chunks(MAX_PIPELINE).enumerate() {
            let mut pipeline = redis::pipe();
            for stream in streams {
                let reset = self.history.reset(scripts, self.link.node, stream);
                pipeline.add_command(reset).ignore();
            }
            if let Err(error) = pipeline.exec_async(&mut *publisher).await {
                // Asked again at the next reconnection.
                self.hub.diverged_again(&diverged[index * MAX_PIPELINE..]);
                return Err(error);
            }
        }
        if !diverged.is_empty() {
            tracing::info!(
                streams = diverged.len(),
                "streams written without Redis start again: their readers fetch again"
            );
        }
        Ok(())
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
/// and the subscription to `channel`.
async fn connect(
    client: &Client,
    channel: &str,
) -> redis::RedisResult<(MultiplexedConnection, redis::aio::PubSub, Scripts)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    let mut publisher = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let scripts = Scripts::load(&mut publisher).await?;
    let mut subscription = timeout(REDIS_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out("connecting"))??;
    // Subscribed before saying hello, so no answer is missed.
    timeout(REDIS_TIMEOUT, subscription.subscribe(channel))
        .await
        .map_err(|_| timed_out("subscribing"))??;
    Ok((publisher, subscription, scripts))
}

fn timed_out(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis did not answer in time ({what})"),
    ))
}
