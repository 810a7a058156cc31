//! Form errors in URLs are shown only if this server wrote them.
//!
//! Without JavaScript, a form's server function answers a failure with a
//! redirect back to the form, the error in the URL (`?__path=…&__err=…`),
//! and the page shows it in its alert. Anyone can write such a URL: a link
//! to `/login?__err=…` would show the attacker's sentence in the site's own
//! alert. So the redirects this server writes are signed (`__sig`: an
//! HMAC-SHA256 of the page, the server function and the error, under a key
//! the processes share in the database), and a page asked for with an
//! error not signed for it is redirected to itself without it. An error a
//! caller writes into `Referer`, which Leptos would carry back, is removed
//! before the call.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::AnyPool;

/// The parameters Leptos puts in the URL, and the signature beside them.
const PATH: &str = "__path";
const ERROR: &str = "__err";
const SIGNATURE: &str = "__sig";

/// The key's name in `app_secrets`.
const KEY_NAME: &str = "form_errors";

/// The key that signs form errors: made by the first process to start and
/// read by every other, so a redirect written by one is believed by all.
#[derive(Clone)]
pub struct FormErrorKey(Arc<[u8]>);

/// The key is never printed.
impl std::fmt::Debug for FormErrorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FormErrorKey(…)")
    }
}

impl FormErrorKey {
    /// The shared key, made now if no process has made it yet.
    pub async fn load_or_create(db: &AnyPool) -> Result<Self, sqlx::Error> {
        let made = hex(&rand::random::<[u8; 32]>());
        // Two processes starting at once: the first insert wins, and both
        // read the same row.
        sqlx::query(
            "INSERT INTO app_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_NAME)
        .bind(&made)
        .execute(db)
        .await?;
        let key: String = sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = $1")
            .bind(KEY_NAME)
            .fetch_one(db)
            .await?;
        Ok(Self(key.into_bytes().into()))
    }

    /// The MAC of an error of the server function at `path`, shown on the
    /// page at `page`: a signed error is good on its own page only.
    fn mac(&self, page: &str, path: &str, error: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for part in [page, path, error] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    fn sign(&self, page: &str, path: &str, error: &str) -> String {
        hex(&self.mac(page, path, error).finalize().into_bytes())
    }

    fn signed(&self, page: &str, path: &str, error: &str, signature: &str) -> bool {
        let Some(bytes) = decode_hex(signature) else {
            return false;
        };
        self.mac(page, path, error).verify_slice(&bytes).is_ok()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

/// The form-error parameters of a query, if it has an error.
fn form_error(query: &str) -> Option<(String, String, String)> {
    let mut found = (None, None, String::new());
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            PATH => found.0 = Some(value.into_owned()),
            ERROR => found.1 = Some(value.into_owned()),
            SIGNATURE => found.2 = value.into_owned(),
            _ => {}
        }
    }
    let (path, error, signature) = found;
    error.map(|error| (path.unwrap_or_default(), error, signature))
}

/// `query` without the form-error parameters.
fn without_form_error(query: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(query.as_bytes())
                .filter(|(name, _)| ![PATH, ERROR, SIGNATURE].contains(&name.as_ref())),
        )
        .finish()
}

/// Axum middleware: see the module documentation.
pub async fn sign_and_check(
    State(key): State<FormErrorKey>,
    mut request: Request,
    next: Next,
) -> Response {
    let page = request.uri().path().to_owned();
    if request.method() == Method::GET
        && let Some(query) = request.uri().query()
        && let Some((path, error, signature)) = form_error(query)
        && !key.signed(&page, &path, &error, &signature)
    {
        // One leading slash: `//evil.example` would send the browser away.
        let page = format!("/{}", page.trim_start_matches('/'));
        let target = match without_form_error(query).as_str() {
            "" => page,
            rest => format!("{page}?{rest}"),
        };
        tracing::warn!(path = %request.uri().path(), "a form error not written by this server dropped");
        return Redirect::to(&target).into_response();
    }
    // Leptos builds the redirect back to the form from `Referer`: an error
    // the caller wrote there must not come back signed.
    let referer = request
        .headers()
        .get(header::REFERER)
        .and_then(|referer| referer.to_str().ok())
        .and_then(strip_location)
        .and_then(|referer| HeaderValue::from_str(&referer).ok());
    if let Some(referer) = referer {
        request.headers_mut().insert(header::REFERER, referer);
    }
    let is_server_function = request.method() == Method::POST && page.starts_with(SERVER_FN_PREFIX);
    let mut response = next.run(request).await;
    if is_server_function
        && response.status().is_redirection()
        && let Some(location) = response.headers().get(header::LOCATION)
        && let Ok(location) = location.to_str()
        && let Some(signed) = sign_location(&key, location)
        && let Ok(signed) = HeaderValue::from_str(&signed)
    {
        response.headers_mut().insert(header::LOCATION, signed);
    }
    response
}

/// Where server functions live (`#[server(prefix = "/api")]`).
const SERVER_FN_PREFIX: &str = "/api/";

/// A URL's parts: what comes before its query, the query, the fragment.
fn split_url(url: &str) -> (&str, Option<&str>, Option<&str>) {
    let (url, fragment) = match url.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (url, None),
    };
    match url.split_once('?') {
        Some((before, query)) => (before, Some(query), fragment),
        None => (url, None, fragment),
    }
}

/// The path of what comes before a URL's query: `/signup` of
/// `http://host:3000/signup` or of `/signup`.
fn page_of(before: &str) -> &str {
    match before.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => before,
    }
}

fn join_url(before: &str, query: &str, fragment: Option<&str>) -> String {
    let fragment = fragment
        .map(|fragment| format!("#{fragment}"))
        .unwrap_or_default();
    match query {
        "" => format!("{before}{fragment}"),
        query => format!("{before}?{query}{fragment}"),
    }
}

/// `url` without form-error parameters, if it had any.
fn strip_location(url: &str) -> Option<String> {
    let (before, query, fragment) = split_url(url);
    let query = query?;
    form_error(query)?;
    Some(join_url(before, &without_form_error(query), fragment))
}

/// `location` with its form error signed, if it carries one.
fn sign_location(key: &FormErrorKey, location: &str) -> Option<String> {
    let (before, query, fragment) = split_url(location);
    let query = query?;
    let (path, error, _) = form_error(query)?;
    let signature = key.sign(page_of(before), &path, &error);
    let query = url::form_urlencoded::Serializer::new(without_form_error(query))
        .append_pair(PATH, &path)
        .append_pair(ERROR, &error)
        .append_pair(SIGNATURE, &signature)
        .finish();
    Some(join_url(before, &query, fragment))
}
