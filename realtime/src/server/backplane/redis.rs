//! The backplane over Redis pub/sub.
//!
//! Every process subscribes to one channel and publishes its envelopes to
//! it: one `PUBLISH` per emit, however many recipients it has, batched
//! into pipelines when emits come faster than Redis answers.
//!
//! Redis is a help, never a requirement: a process that cannot reach it
//! starts anyway and serves its own connections, and a process that loses
//! it keeps doing so. A background task reconnects with capped exponential
//! backoff, and logs how long cross-process delivery was interrupted and
//! how many emits it missed.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt;
use redis::{AsyncConnectionConfig, Client, aio::MultiplexedConnection};
use thiserror::Error;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{MissedTickBehavior, timeout},
};

use super::{Link, Liveness, Message};
use crate::{backoff::Backoff, server::Hub};

/// The channel used unless [`RedisBackplane::channel`] says otherwise.
/// Its name carries the envelope format's version.
pub const DEFAULT_CHANNEL: &str = "realtime.v1";

/// Envelopes waiting to be published, at most. When Redis cannot keep up,
/// further emits reach this process's connections only (and are counted).
const OUTBOUND_CAPACITY: usize = 16 * 1024;
/// Most envelopes sent in one pipeline.
const MAX_PIPELINE: usize = 512;
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
        let link = hub
            .attach(outbound)
            .ok_or(BackplaneError::AlreadyAttached)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(
            Transport {
                hub: hub.clone(),
                link: Arc::clone(&link),
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
    settings: RedisBackplane,
    queue: mpsc::Receiver<Bytes>,
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
                Ok((publisher, subscription)) => {
                    self.settings.backoff.reset();
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
                    let ended = self.serve(publisher, subscription).await;
                    self.link.set_up(false);
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
    ) -> Ended {
        let mut messages = subscription.into_on_message();
        // What waited for Redis (ends of sessions) goes first, then this
        // node's whole presence, which asks the others for theirs.
        if let Err(error) = self.publish_pending(&mut publisher).await {
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
                    if let Err(error) = self.publish_pending(&mut publisher).await {
                        return Ended::Lost(error.to_string());
                    }
                    if let Err(error) = self.publish(&mut publisher, &batch).await {
                        // These reached this process's connections only.
                        for _ in batch.drain(..) {
                            self.link.count_missed();
                        }
                        return Ended::Lost(error.to_string());
                    }
                    batch.clear();
                }
                _ = heartbeat.tick() => {
                    // Own messages come back through the subscription; when
                    // they stop, it is dead even if publishing still works.
                    if self.link.since_last_echo() > liveness.timeout {
                        return Ended::Lost("this process no longer hears its own messages".to_owned());
                    }
                    let beat = self.envelope(&Message::Heartbeat);
                    if let Err(error) = self.publish(&mut publisher, &[beat]).await {
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
                    batch.extend(self.link.take_pending());
                    while let Ok(envelope) = self.queue.try_recv() {
                        batch.push(envelope);
                    }
                    batch.push(self.envelope(&Message::Goodbye));
                    if let Err(error) = self.publish(&mut publisher, &batch).await {
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
        let published = self.publish(publisher, &pending).await;
        if published.is_err() {
            self.link.put_back(pending);
        }
        published
    }

    fn envelope(&self, message: &Message) -> Bytes {
        super::Envelope::encode(self.link.node, message)
    }

    /// Publishes envelopes in one round trip.
    async fn publish(
        &self,
        publisher: &mut MultiplexedConnection,
        envelopes: &[Bytes],
    ) -> redis::RedisResult<()> {
        let channel = self.settings.channel.as_str();
        let mut pipeline = redis::pipe();
        for envelope in envelopes {
            pipeline.publish(channel, envelope.as_ref()).ignore();
        }
        pipeline.exec_async(publisher).await
    }

    /// Sleeps before the next attempt, throwing away what is queued (those
    /// emits already reached this process's connections). Returns whether
    /// the task was told to stop meanwhile.
    async fn wait_or_stop(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return false,
                _ = self.stopped.changed() => return true,
                envelope = self.queue.recv() => match envelope {
                    Some(_) => self.link.count_missed(),
                    None => return true,
                },
            }
        }
    }
}

/// Opens the publishing connection and the subscription to `channel`.
async fn connect(
    client: &Client,
    channel: &str,
) -> redis::RedisResult<(MultiplexedConnection, redis::aio::PubSub)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    let publisher = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut subscription = timeout(REDIS_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out("connecting"))??;
    // Subscribed before saying hello, so no answer is missed.
    timeout(REDIS_TIMEOUT, subscription.subscribe(channel))
        .await
        .map_err(|_| timed_out("subscribing"))??;
    Ok((publisher, subscription))
}

fn timed_out(what: &'static str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis did not answer in time ({what})"),
    ))
}
