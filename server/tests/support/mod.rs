//! Test support: the real router on a fresh database (SQLite, or
//! PostgreSQL when `TEST_POSTGRES_URL` is set), driven in-process, and a small cookie-keeping client for the auth endpoints.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use app::{
    auth::{
        User,
        session::{SECURE_SESSION_COOKIE_NAME, SESSION_COOKIE_NAME},
    },
    error::AppError,
};
use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use leptos::config::LeptosOptions;
use serde::de::DeserializeOwned;
use server::{Config, Database, config::SessionConfig};
use tower::ServiceExt;

/// The session settings tests use unless they say otherwise.
pub fn default_session() -> SessionConfig {
    SessionConfig {
        secure: false,
        expiry: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(24 * 3600),
    }
}

/// A folder of its own for each test, under cargo's scratch folder for
/// integration tests (`target/tmp`), emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The PostgreSQL server the suite runs on instead of SQLite, when set
/// (scripts/test runs the suite once on each). Any database of the server
/// will do: each test creates a database of its own next to it.
pub const POSTGRES_URL_VARIABLE: &str = "TEST_POSTGRES_URL";

/// Databases the tests create start with this, named for the product;
/// scripts/test drops them before each run (`TEST_DATABASE_PREFIX` in
/// scripts/setup.sh, which must agree).
const TEST_DATABASE_PREFIX: &str = "template_test_";

/// A fresh, empty database for one test: a SQLite file of its own, or a new
/// PostgreSQL database when `TEST_POSTGRES_URL` is set.
pub async fn fresh_database_url() -> String {
    match std::env::var(POSTGRES_URL_VARIABLE) {
        Ok(server) if !server.is_empty() => fresh_postgres_database(&server).await,
        _ => format!("sqlite://{}/app.db", scratch_dir("db").display()),
    }
}

async fn fresh_postgres_database(server: &str) -> String {
    use sqlx::Connection;

    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|error| panic!("{POSTGRES_URL_VARIABLE}={server}: {error}"));
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
        .execute(&mut admin)
        .await
        .expect("an old test database can be dropped");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("a test database can be created");
    let _ = admin.close().await;
    // Same server and credentials, the new database: replace the path.
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let authority_end = base
        .find("://")
        .and_then(|scheme| base[scheme + 3..].find('/').map(|i| scheme + 3 + i))
        .unwrap_or(base.len());
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..authority_end])
}

/// A configuration for a test server with its own database.
pub async fn test_config(session: SessionConfig) -> Config {
    Config {
        leptos: LeptosOptions::builder()
            .output_name("app")
            .site_addr(([127, 0, 0, 1], 0))
            .build(),
        database_url: fresh_database_url().await,
        database_pool_size: None,
        session,
        realtime: Default::default(),
        socket_threads: 1,
        redis_url: None,
        redis_channel: server::config::DEFAULT_REDIS_CHANNEL.to_owned(),
        redis_shards: realtime::server::broker::redis::DEFAULT_SHARDS,
        trusted_proxies: Default::default(),
        network_prefixes: Default::default(),
        max_request_body_bytes: server::config::DEFAULT_MAX_REQUEST_BODY_BYTES,
        request_body_timeout: server::config::DEFAULT_REQUEST_BODY_TIMEOUT,
        request_header_timeout: server::config::DEFAULT_REQUEST_HEADER_TIMEOUT,
        response_stall_timeout: server::config::DEFAULT_RESPONSE_STALL_TIMEOUT,
        metrics_addr: None,
        app: Default::default(),
    }
}

/// The whole application on a fresh database.
pub struct TestApp {
    router: Router,
    /// The timeouts its connections are served with.
    http: server::connections::HttpLimits,
    pub database: Database,
    pub hub: realtime::server::Hub,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_session(default_session()).await
    }

    pub async fn with_session(session: SessionConfig) -> Self {
        Self::with_config(test_config(session).await).await
    }

    /// The application with settings of the test's own: start from
    /// `test_config(default_session())` and change what the test needs.
    pub async fn with_config(config: Config) -> Self {
        let database = Database::open(&config.database_url, config.database_pool_size)
            .await
            .expect("the test database opens");
        let hub = server::realtime_hub(&config, &database, None).expect("a valid REDIS_URL");
        let router = server::app(&config, &database, &hub);
        Self {
            router,
            http: config.http_limits(),
            database,
            hub,
        }
    }

    /// Serves the same application (same database, same hub) on a free
    /// port too, as the server does, for WebSockets and whatever else
    /// needs a real connection.
    pub async fn listen(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let address = listener.local_addr().expect("a bound address");
        tokio::spawn(server::connections::serve(
            listener,
            self.router.clone(),
            self.http,
            std::future::pending(),
        ));
        address
    }

    /// A client with no cookies, at 127.0.0.1.
    pub fn browser(&self) -> Browser<'_> {
        self.browser_at(ORDINARY_CLIENT)
    }

    /// A client with no cookies, at `address`: hostile traffic comes from
    /// 127.0.0.2 and up, so that limits per address never throttle the
    /// ordinary clients of a test.
    pub fn browser_at(&self, address: &str) -> Browser<'_> {
        Browser {
            app: self,
            cookie: None,
            address: address.parse().expect("an IP address"),
        }
    }

    /// Sends one request through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("the body can be read");
        TestResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Makes every session expired, as time passing would.
    pub async fn expire_all_sessions(&self) {
        // Each database has tower-sessions' own table and column type.
        let sql = match self.database.backend() {
            server::database::Backend::Sqlite => "UPDATE tower_sessions SET expiry_date = 0",
            server::database::Backend::Postgres => {
                "UPDATE tower_sessions.session SET expiry_date = to_timestamp(0)"
            }
        };
        sqlx::query(sql)
            .execute(&self.database.pool)
            .await
            .expect("sessions can be expired");
    }

    /// The latest expiry of any stored session, as the database writes it
    /// (text that sorts as time does; tests with one logged-in session read
    /// theirs).
    pub async fn latest_session_expiry(&self) -> String {
        let sql = match self.database.backend() {
            server::database::Backend::Sqlite => "SELECT MAX(expiry_date) FROM tower_sessions",
            server::database::Backend::Postgres => {
                "SELECT CAST(MAX(expiry_date) AS TEXT) FROM tower_sessions.session"
            }
        };
        sqlx::query_scalar(sql)
            .fetch_one(&self.database.pool)
            .await
            .expect("sessions can be read")
    }

    /// Deletes the account `name`, as an administrator would: its
    /// sessions stay, and name nobody.
    pub async fn delete_user(&self, name: &str) {
        sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&self.database.pool)
            .await
            .expect("a user can be deleted");
    }

    /// How many rows `users` has.
    pub async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.database.pool)
            .await
            .expect("users can be counted")
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("{error}: unexpected body {:?}", self.body))
    }

    /// The `Set-Cookie` header for the session cookie (either name), if any.
    pub fn session_cookie(&self) -> Option<SetCookie> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .map(SetCookie::parse)
            .find(|cookie| {
                cookie.name == SESSION_COOKIE_NAME || cookie.name == SECURE_SESSION_COOKIE_NAME
            })
    }
}

/// A parsed `Set-Cookie` header.
#[derive(Debug)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// The attributes, lower-cased: `httponly`, `samesite=lax`, `max-age=60`…
    pub attributes: Vec<String>,
}

impl SetCookie {
    fn parse(header: &str) -> Self {
        let mut parts = header.split(';').map(str::trim);
        let (name, value) = parts
            .next()
            .and_then(|pair| pair.split_once('='))
            .expect("a cookie has a name and a value");
        Self {
            name: name.to_owned(),
            value: value.to_owned(),
            attributes: parts.map(str::to_ascii_lowercase).collect(),
        }
    }

    pub fn has(&self, attribute: &str) -> bool {
        self.attributes.iter().any(|a| a == attribute)
    }

    /// `Max-Age` in seconds, if set.
    pub fn max_age(&self) -> Option<i64> {
        self.attributes
            .iter()
            .find_map(|a| a.strip_prefix("max-age="))
            .and_then(|age| age.parse().ok())
    }

    /// Whether this header tells the browser to delete the cookie.
    pub fn is_removal(&self) -> bool {
        self.max_age() == Some(0)
    }
}

/// Calls the auth server functions the way the browser runtime does,
/// keeping the session cookie as a browser would.
pub struct Browser<'a> {
    app: &'a TestApp,
    pub cookie: Option<String>,
    /// Where its requests come from, as the server's `ConnectInfo` says.
    pub address: std::net::IpAddr,
}

/// The address of ordinary test clients.
pub const ORDINARY_CLIENT: &str = "127.0.0.1";

impl Browser<'_> {
    /// The `Cookie` header with this browser's login session, for a
    /// request made by hand.
    pub fn cookie_header(&self) -> String {
        let cookie = self.cookie.as_deref().expect("a session cookie");
        format!("{SESSION_COOKIE_NAME}={cookie}")
    }

    pub async fn sign_up(&mut self, name: &str, password: &str) -> Result<User, AppError> {
        let form = [("name", name), ("password", password)];
        self.call("/api/auth/sign_up", &form).await
    }

    pub async fn log_in(&mut self, name: &str, password: &str) -> Result<User, AppError> {
        let form = [("name", name), ("password", password)];
        self.call("/api/auth/log_in", &form).await
    }

    pub async fn log_out(&mut self) -> Result<(), AppError> {
        self.call("/api/auth/log_out", &[]).await
    }

    pub async fn current_user(&mut self) -> Result<Option<User>, AppError> {
        self.call("/api/auth/me", &[]).await
    }

    /// Posts a form to a server function and decodes its answer: the
    /// function's value on a 2xx status, its error otherwise.
    pub async fn call<T: DeserializeOwned>(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, AppError> {
        let response = self.post(path, form).await;
        if response.status.is_success() {
            Ok(response.json())
        } else {
            Err(response.json())
        }
    }

    /// Posts a form and returns the raw response, updating the cookie.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        let request = self
            .request("POST", path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(encode_form(form)))
            .expect("a valid request");
        self.send(request).await
    }

    /// Gets a page and returns the raw response, updating the cookie.
    pub async fn get(&mut self, path: &str) -> TestResponse {
        let request = self
            .request("GET", path)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .expect("a valid request");
        self.send(request).await
    }

    /// Opens a WebSocket to `address` as this browser (with its cookie).
    pub async fn open_socket(&self, address: std::net::SocketAddr) -> realtime_testing::TestClient {
        self.open_socket_at(address, realtime::protocol::PATH).await
    }

    /// Opens a socket as a tab that says who it is and how far it read
    /// (the upgrade's query, as the browser runtime writes it).
    pub async fn open_tab(
        &self,
        address: std::net::SocketAddr,
        resume: &realtime::protocol::Resume,
    ) -> realtime_testing::TestClient {
        let path = format!("{}?{}", realtime::protocol::PATH, resume.to_query());
        self.open_socket_at(address, &path).await
    }

    async fn open_socket_at(
        &self,
        address: std::net::SocketAddr,
        path: &str,
    ) -> realtime_testing::TestClient {
        let cookie = self
            .cookie
            .as_ref()
            .map(|cookie| format!("{SESSION_COOKIE_NAME}={cookie}"));
        let headers: Vec<(&str, &str)> = cookie
            .iter()
            .map(|cookie| ("cookie", cookie.as_str()))
            .collect();
        realtime_testing::TestClient::connect_to(address, path, &headers)
            .await
            .expect("the upgrade succeeds")
    }

    pub fn request(&self, method: &str, path: &str) -> axum::http::request::Builder {
        let peer = std::net::SocketAddr::new(self.address, 50_000);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .extension(axum::extract::ConnectInfo(peer));
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, format!("{SESSION_COOKIE_NAME}={cookie}"));
        }
        request
    }

    pub async fn send(&mut self, request: Request<Body>) -> TestResponse {
        let response = self.app.send(request).await;
        if let Some(cookie) = response.session_cookie() {
            self.cookie = (!cookie.is_removal()).then_some(cookie.value);
        }
        response
    }
}

/// `application/x-www-form-urlencoded`, as browsers send forms.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// What the code logs on this thread while the guard lives (a test's
/// runtime has one thread, so its requests' logs too), as text.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

/// A dispatcher registered for the whole test process and never anyone's
/// default: see [`Logs::capture`].
static ANCHOR: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();

impl Logs {
    /// Starts capturing: keep the guard for as long as logs are wanted.
    ///
    /// `tracing` decides once per log statement, for the whole process,
    /// whether anyone may want it, and while at most one dispatcher is
    /// registered it asks the default of whichever thread reaches the
    /// statement first: a test running beside this one without a
    /// subscriber could make `tracing` drop this test's line for good (seen
    /// in CI: "announced" missing from the capture). With a second
    /// dispatcher always registered it asks every registered one instead,
    /// and the cache is rebuilt once the capture is in place.
    #[must_use]
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        ANCHOR.get_or_init(|| {
            tracing::Dispatch::new(
                tracing_subscriber::fmt()
                    .with_max_level(tracing::Level::INFO)
                    .with_writer(std::io::sink)
                    .finish(),
            )
        });
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
