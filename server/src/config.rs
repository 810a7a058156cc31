//! Configuration, read once at start-up from environment variables.
//!
//! Every setting has a default that works on a developer's machine, so the
//! server starts with no variables set at all. The README's "Configuration"
//! table lists them; keep the two in step.

use std::{env, net::SocketAddr, str::FromStr, time::Duration};

use app::{AppSettings, client_addr::NetworkPrefixes, limits::Action};
use leptos::config::LeptosOptions;
use realtime::server::{HubConfig, Origins};
use thiserror::Error;

use crate::{client_addr::TrustedProxies, connections::HttpLimits};

/// The database used when `DATABASE_URL` is not set: a SQLite file under
/// `data/` (which git ignores), created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/app.db";
/// The Redis channel when `REDIS_CHANNEL` is not set: the application's
/// name, then the version of the backplane's format (`realtime.v2`), so
/// two applications on one Redis server do not share events.
pub const DEFAULT_REDIS_CHANNEL: &str = "app.realtime.v2";
/// How long a login lasts when `SESSION_EXPIRY_SECS` is not set: 14 days.
pub const DEFAULT_SESSION_EXPIRY: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// How long a login lasts at most, however much it is used, when
/// `SESSION_MAX_LIFETIME_SECS` is not set: 30 days.
pub const DEFAULT_SESSION_MAX_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The log filter used when `RUST_LOG` is not set.
pub const DEFAULT_LOG_FILTER: &str = "info";
/// The largest request body when `MAX_REQUEST_BODY_BYTES` is not set:
/// room for the largest valid call, a 2,000-character message of 4-byte
/// characters, percent-encoded (24,000 bytes).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 32 * 1024;
/// How long a request's body may take to arrive when
/// `REQUEST_BODY_TIMEOUT_SECS` is not set: a valid call's body is a few
/// KiB, sent at once.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's headers may take to arrive when
/// `REQUEST_HEADER_TIMEOUT_SECS` is not set: a browser sends them at once.
/// It is also how long a kept-alive connection may wait for its next
/// request.
pub const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response may wait for its client to read it when
/// `RESPONSE_STALL_TIMEOUT_SECS` is not set.
pub const DEFAULT_RESPONSE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the server needs to know before it starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// Leptos's own settings: the listening address (`LEPTOS_SITE_ADDR`),
    /// where the built site lives (`LEPTOS_SITE_ROOT`) and the bundle's name.
    /// cargo-leptos sets these from `[[workspace.metadata.leptos]]`.
    pub leptos: LeptosOptions,
    /// `DATABASE_URL`: where users, sessions and data are stored.
    pub database_url: String,
    /// `DATABASE_POOL_SIZE`: connections each of the two database pools
    /// opens at most. Unset: 32 for SQLite, 10 for PostgreSQL
    /// ([`crate::database::Backend::default_pool_size`]).
    pub database_pool_size: Option<u32>,
    /// Cookie and lifetime settings of the login session.
    pub session: SessionConfig,
    /// The real-time hub's limits (`REALTIME_*`), and
    /// `REALTIME_ALLOWED_ORIGINS`: pages of other origins (besides this
    /// server's own) that may open the WebSocket and call server functions,
    /// comma-separated.
    pub realtime: HubConfig,
    /// `REALTIME_SOCKET_THREADS`: worker threads of the runtime the
    /// WebSocket connections run on, apart from the one that answers
    /// requests ([`crate::sockets`]). Unset: one fewer than the cores the
    /// process may use, at least 1 ([`default_socket_threads`]). 0: the
    /// connections run on the request runtime.
    pub socket_threads: usize,
    /// `REDIS_URL`: the Redis server through which several server
    /// processes share events. Unset: this process is on its own.
    pub redis_url: Option<String>,
    /// `REDIS_CHANNEL`: the pub/sub channel the processes share. Processes
    /// on the same channel act as one; give each application (or test) its
    /// own when they share a Redis server.
    pub redis_channel: String,
    /// `REDIS_SHARDS`: how many shards the streams are spread over, each
    /// with a channel of its own (16). The same for every process, and
    /// fixed for a deployment.
    pub redis_shards: u16,
    /// `TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` names the client
    /// (addresses or networks, comma-separated). None by default.
    pub trusted_proxies: TrustedProxies,
    /// `NETWORK_PREFIX_V4`, `NETWORK_PREFIX_V6`: how many leading bits of a
    /// client's address name the network that limits per address count
    /// (32 and 64).
    pub network_prefixes: NetworkPrefixes,
    /// `MAX_REQUEST_BODY_BYTES`: larger request bodies get 413.
    pub max_request_body_bytes: usize,
    /// `REQUEST_BODY_TIMEOUT_SECS`: a body that takes longer to arrive gets
    /// 408 (a client that trickles it would hold its connection forever).
    pub request_body_timeout: Duration,
    /// `REQUEST_HEADER_TIMEOUT_SECS`: a connection whose request headers
    /// (the first, or the next on a kept-alive connection) take longer to
    /// arrive is closed (`connections`).
    pub request_header_timeout: Duration,
    /// `RESPONSE_STALL_TIMEOUT_SECS`: a connection whose client leaves a
    /// response unread that long is closed (`connections`).
    pub response_stall_timeout: Duration,
    /// `METRICS_ADDR`: where Prometheus metrics are served (`/metrics`),
    /// apart from the application. Unset (the default): not served.
    pub metrics_addr: Option<SocketAddr>,
    /// The application's rate limits (`LIMIT_*`) and password hashing
    /// (`PASSWORD_HASHING_*`).
    pub app: AppSettings,
}

/// How the session cookie is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// `SESSION_COOKIE_SECURE`: send the cookie over HTTPS only. Off by
    /// default so the app works over plain http on 127.0.0.1; turn it on
    /// behind TLS.
    pub secure: bool,
    /// `SESSION_EXPIRY_SECS`: how long a login lasts after its last use
    /// (a session in use is written back at most once a minute).
    pub expiry: Duration,
    /// `SESSION_MAX_LIFETIME_SECS`: how long a login lasts at most after
    /// the log-in, however much it is used; then its sockets close and
    /// the person logs in again.
    pub max_lifetime: Duration,
}

/// A variable that is set but cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{name} is not valid Unicode")]
    NotUnicode { name: &'static str },
    #[error("Leptos settings (LEPTOS_*): {0}")]
    Leptos(String),
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let leptos = leptos::config::get_configuration(None)
            .map_err(|error| ConfigError::Leptos(error.to_string()))?
            .leptos_options;
        Ok(Self {
            leptos,
            database_url: var("DATABASE_URL")?.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            database_pool_size: parse_var("DATABASE_POOL_SIZE", parse_positive)?
                .map(|size| u32::try_from(size).unwrap_or(u32::MAX)),
            session: SessionConfig {
                secure: parse_var("SESSION_COOKIE_SECURE", parse_bool)?.unwrap_or(false),
                expiry: parse_var("SESSION_EXPIRY_SECS", parse_seconds)?
                    .unwrap_or(DEFAULT_SESSION_EXPIRY),
                max_lifetime: parse_var("SESSION_MAX_LIFETIME_SECS", parse_lifetime)?
                    .unwrap_or(DEFAULT_SESSION_MAX_LIFETIME),
            },
            realtime: hub_config()?,
            socket_threads: parse_var("REALTIME_SOCKET_THREADS", parse_socket_threads)?
                .unwrap_or_else(default_socket_threads),
            redis_url: var("REDIS_URL")?.filter(|url| !url.trim().is_empty()),
            redis_channel: var("REDIS_CHANNEL")?
                .filter(|channel| !channel.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_REDIS_CHANNEL.to_owned()),
            redis_shards: parse_var("REDIS_SHARDS", parse_shards)?
                .unwrap_or(realtime::server::broker::redis::DEFAULT_SHARDS),
            trusted_proxies: parse_var("TRUSTED_PROXIES", parse_from_str)?.unwrap_or_default(),
            network_prefixes: network_prefixes()?,
            max_request_body_bytes: parse_var("MAX_REQUEST_BODY_BYTES", parse_positive)?
                .unwrap_or(DEFAULT_MAX_REQUEST_BODY_BYTES),
            request_body_timeout: parse_var("REQUEST_BODY_TIMEOUT_SECS", parse_timeout)?
                .unwrap_or(DEFAULT_REQUEST_BODY_TIMEOUT),
            request_header_timeout: parse_var("REQUEST_HEADER_TIMEOUT_SECS", parse_timeout)?
                .unwrap_or(DEFAULT_REQUEST_HEADER_TIMEOUT),
            response_stall_timeout: parse_var("RESPONSE_STALL_TIMEOUT_SECS", parse_timeout)?
                .unwrap_or(DEFAULT_RESPONSE_STALL_TIMEOUT),
            metrics_addr: parse_var("METRICS_ADDR", parse_from_str)?,
            app: app_settings()?,
        })
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.leptos.site_addr
    }

    /// The timeouts connections are served with.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: self.request_header_timeout,
            write_stall_timeout: self.response_stall_timeout,
            shutdown_grace: crate::connections::SHUTDOWN_GRACE,
        }
    }
}

fn var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(env::VarError::NotPresent) => Ok(None),
        Err(env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
    }
}

fn parse_var<T>(
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    var(name)?
        .map(|value| {
            parse(value.trim()).map_err(|reason| ConfigError::Invalid {
                name,
                value: value.clone(),
                reason,
            })
        })
        .transpose()
}

/// `NETWORK_PREFIX_V4` and `NETWORK_PREFIX_V6`, or their defaults.
fn network_prefixes() -> Result<NetworkPrefixes, ConfigError> {
    let default = NetworkPrefixes::default();
    let bits = |name| {
        parse_var(name, |value| {
            u8::from_str(value).map_err(|error| error.to_string())
        })
    };
    let (v4, v6) = (bits("NETWORK_PREFIX_V4")?, bits("NETWORK_PREFIX_V6")?);
    let (v4, v6) = (v4.unwrap_or(default.v4()), v6.unwrap_or(default.v6()));
    NetworkPrefixes::new(v4, v6).map_err(|reason| ConfigError::Invalid {
        name: "NETWORK_PREFIX_V4, NETWORK_PREFIX_V6",
        value: format!("{v4}, {v6}"),
        reason,
    })
}

/// The hub's settings: its defaults, and each `REALTIME_*` variable set.
fn hub_config() -> Result<HubConfig, ConfigError> {
    let mut hub = HubConfig::default();
    if let Some(origins) = parse_var("REALTIME_ALLOWED_ORIGINS", parse_origins)? {
        hub.origins = origins;
    }
    let counts: [(&'static str, &mut usize); 8] = [
        ("REALTIME_MAX_CONNECTIONS", &mut hub.max_connections),
        (
            "REALTIME_MAX_ANONYMOUS_CONNECTIONS",
            &mut hub.max_anonymous_connections,
        ),
        (
            "REALTIME_MAX_CONNECTIONS_PER_USER",
            &mut hub.max_connections_per_user,
        ),
        (
            "REALTIME_MAX_ANONYMOUS_PER_ADDRESS",
            &mut hub.max_anonymous_per_address,
        ),
        ("REALTIME_MAX_EVENT_BYTES", &mut hub.max_event_bytes),
        ("REALTIME_HISTORY_MAX_BYTES", &mut hub.history_max_bytes),
        ("REALTIME_HISTORY_MAX_STREAMS", &mut hub.history_max_streams),
        ("REALTIME_RECOVERY_MAX_EVENTS", &mut hub.recovery_max_events),
    ];
    for (name, field) in counts {
        if let Some(count) = parse_var(name, parse_positive)? {
            *field = count;
        }
    }
    // Visitors keep to half the places unless told otherwise.
    if var("REALTIME_MAX_ANONYMOUS_CONNECTIONS")?.is_none() {
        hub.max_anonymous_connections = hub.max_connections.div_ceil(2);
    }
    // 0 turns the history off.
    if let Some(count) = parse_var("REALTIME_HISTORY_PER_STREAM", parse_from_str)? {
        hub.history_per_stream = count;
    }
    let rates: [(&'static str, &mut u32); 4] = [
        ("REALTIME_FRAMES_PER_SECOND", &mut hub.frames_per_second),
        ("REALTIME_FRAME_BURST", &mut hub.frame_burst),
        (
            "REALTIME_NEW_CONNECTIONS_PER_MINUTE",
            &mut hub.new_connections_per_minute,
        ),
        (
            "REALTIME_NEW_CONNECTION_BURST",
            &mut hub.new_connection_burst,
        ),
    ];
    for (name, field) in rates {
        if let Some(count) = parse_var(name, parse_positive)? {
            *field = u32::try_from(count).unwrap_or(u32::MAX);
        }
    }
    let durations: [(&'static str, &mut Duration); 3] = [
        (
            "REALTIME_SESSION_CHECK_SECS",
            &mut hub.session_check_interval,
        ),
        ("REALTIME_WRITE_TIMEOUT_SECS", &mut hub.write_timeout),
        ("REALTIME_HISTORY_MAX_AGE_SECS", &mut hub.history_max_age),
    ];
    for (name, field) in durations {
        if let Some(seconds) = parse_var(name, parse_seconds)? {
            *field = seconds;
        }
    }
    // 0 writes each batch as soon as it is queued.
    if let Some(interval) = parse_var("REALTIME_WRITE_INTERVAL_MS", parse_write_interval)? {
        hub.write_interval = interval;
    }
    Ok(hub)
}

/// The application's settings: each `LIMIT_*` rate and the password
/// hashing bounds, where set.
fn app_settings() -> Result<AppSettings, ConfigError> {
    let mut settings = AppSettings::default();
    for &action in Action::ALL {
        if let Some(rate) = parse_var(action.variable(), parse_from_str)? {
            settings.limits.set(action, rate);
        }
    }
    if let Some(concurrency) = parse_var("PASSWORD_HASHING_CONCURRENCY", parse_positive)? {
        settings.hashing.concurrency = concurrency;
    }
    if let Some(seconds) = parse_var("PASSWORD_HASHING_MAX_WAIT_SECS", parse_from_str)? {
        settings.hashing.max_wait = Duration::from_secs(seconds);
    }
    // 0 turns the digest off.
    settings.jobs.sign_up_digest = match parse_var("SIGN_UP_DIGEST_SECS", parse_from_str)? {
        None => Some(app::jobs::DEFAULT_SIGN_UP_DIGEST),
        Some(0) => None,
        Some(seconds) => Some(Duration::from_secs(seconds)),
    };
    Ok(settings)
}

fn parse_from_str<T: FromStr<Err: ToString>>(value: &str) -> Result<T, String> {
    value.parse().map_err(|error: T::Err| error.to_string())
}

fn parse_positive(value: &str) -> Result<usize, String> {
    match usize::from_str(value) {
        Ok(0) | Err(_) => Err("expected a whole number above 0".to_owned()),
        Ok(count) => Ok(count),
    }
}

/// Seconds from 1 to an hour: longer is no timeout at all (and far past
/// what a timer's arithmetic takes).
fn parse_timeout(value: &str) -> Result<Duration, String> {
    match u64::from_str(value) {
        Ok(secs @ 1..=3600) => Ok(Duration::from_secs(secs)),
        _ => Err("expected a whole number of seconds from 1 to 3600".to_owned()),
    }
}

fn parse_shards(value: &str) -> Result<u16, String> {
    match u16::from_str(value) {
        Ok(shards @ 1..=1024) => Ok(shards),
        _ => Err("expected a whole number from 1 to 1024".to_owned()),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

fn parse_origins(value: &str) -> Result<Origins, String> {
    let origins: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();
    match origins.iter().find(|origin| !origin.contains("://")) {
        Some(bad) => Err(format!(
            "{bad:?} is not an origin like https://app.example.com"
        )),
        None if origins.is_empty() => Ok(Origins::SameOrigin),
        None => Ok(Origins::SameOriginAnd(origins)),
    }
}

/// Up to a second: a longer wait would be a delay a person notices, not a
/// gathering of writes.
fn parse_write_interval(value: &str) -> Result<Duration, String> {
    match u64::from_str(value) {
        Ok(millis @ 0..=1000) => Ok(Duration::from_millis(millis)),
        _ => Err("expected a whole number of milliseconds from 0 to 1000".to_owned()),
    }
}

/// The socket runtime's threads when `REALTIME_SOCKET_THREADS` is not set:
/// one fewer than the cores, at least 1. On two cores, 1 measured best with
/// the load generator on the same cores (docs/benchmarks.md, "A runtime for
/// the sockets"); the core left is for the requests, the database's
/// threads and the rest of the machine.
pub fn default_socket_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cores| cores.get().saturating_sub(1))
        .max(1)
}

fn parse_socket_threads(value: &str) -> Result<usize, String> {
    match usize::from_str(value) {
        Ok(threads @ 0..=1024) => Ok(threads),
        _ => Err("expected a number of threads from 0 to 1024".to_owned()),
    }
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    match u64::from_str(value) {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => Err("expected a whole number of seconds".to_owned()),
    }
}

/// A login's longest life: a minute at least (a log-in's time is kept in
/// whole seconds, so a shorter one could end as it begins).
fn parse_lifetime(value: &str) -> Result<Duration, String> {
    let lifetime = parse_seconds(value)?;
    if lifetime < Duration::from_secs(60) {
        return Err("must be at least 60".to_owned());
    }
    Ok(lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_the_usual_spellings() {
        for yes in ["1", "true", "TRUE", "yes", "on"] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in ["0", "false", "No", "off"] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn allowed_origins_are_a_comma_separated_list() {
        assert_eq!(parse_origins(""), Ok(Origins::SameOrigin));
        assert_eq!(
            parse_origins("https://a.example, https://b.example:8443"),
            Ok(Origins::SameOriginAnd(vec![
                "https://a.example".into(),
                "https://b.example:8443".into()
            ]))
        );
        assert!(parse_origins("a.example").is_err());
    }

    #[test]
    fn expiry_is_a_positive_number_of_seconds() {
        assert_eq!(parse_seconds("90"), Ok(Duration::from_secs(90)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-5").is_err());
        assert!(parse_seconds("1h").is_err());
    }

    #[test]
    fn a_logins_lifetime_is_a_minute_at_least() {
        assert_eq!(parse_lifetime("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_lifetime("2592000"), Ok(DEFAULT_SESSION_MAX_LIFETIME));
        assert!(parse_lifetime("59").is_err());
        assert!(parse_lifetime("0").is_err());
        assert!(parse_lifetime("1d").is_err());
    }

    #[test]
    fn the_write_interval_is_milliseconds_up_to_a_second() {
        assert_eq!(parse_write_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_write_interval("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_write_interval("1000"), Ok(Duration::from_secs(1)));
        assert!(parse_write_interval("1001").is_err());
        assert!(parse_write_interval("-1").is_err());
        assert!(parse_write_interval("0.5").is_err());
    }

    #[test]
    fn timeouts_are_whole_seconds_from_one_to_an_hour() {
        // Hyper's timer panics on a deadline past what an `Instant` holds:
        // a huge value must be refused here, not at the first request.
        assert_eq!(parse_timeout("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_timeout("3600"), Ok(Duration::from_secs(3600)));
        for refused in ["0", "3601", "18446744073709551615", "-1", "1.5", ""] {
            assert!(parse_timeout(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn socket_threads_are_a_count_and_default_to_at_least_one() {
        assert_eq!(parse_socket_threads("0"), Ok(0));
        assert_eq!(parse_socket_threads("3"), Ok(3));
        assert!(parse_socket_threads("1025").is_err());
        assert!(parse_socket_threads("two").is_err());
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        assert_eq!(default_socket_threads(), cores.saturating_sub(1).max(1));
    }
}
