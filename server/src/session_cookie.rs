//! Session cookies that another site planted: left out, or refused.
//!
//! A page on a sibling subdomain (`blog.example.com`) can set a cookie for
//! the whole domain (`session=…; Domain=example.com`), and the browser then
//! sends it beside this site's own. Which one the session layer would read
//! is an accident of order; a request carrying two of the name the server
//! reads is refused with 400 and a message that tells the person how to
//! recover, before the session is read (a cookie of the other name is
//! never read, and not counted). Behind TLS the cookie is
//! `__Host-session`, which no other host can set at all (`app::auth::session::session_cookie_name`), except under a
//! percent-encoded name (`%5F_Host-session`) that the browser keeps apart
//! and the session layer would decode into ours: such cookies are taken
//! out of the request before anything reads it.

use app::{
    auth::session::{drop_disguised_session_cookies, session_cookie_count},
    error::AppError,
};
use axum::{
    Json,
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Axum middleware: see the module documentation. The state is the session
/// cookie's name, as configured.
pub async fn refuse_two_session_cookies(
    State(name): State<&'static str>,
    mut request: Request,
    next: Next,
) -> Response {
    if drop_disguised_session_cookies(request.headers_mut()) {
        tracing::warn!(
            path = %request.uri().path(),
            "a session cookie under a percent-encoded name left out: another page set it"
        );
    }
    if session_cookie_count(request.headers(), name) > 1 {
        tracing::warn!(
            path = %request.uri().path(),
            "a request with two session cookies refused: another page set one"
        );
        let error = AppError::Invalid(
            "Your browser sent two login cookies for this site, one of them set by another \
             page. Clear this site's cookies, then log in again."
                .into(),
        );
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    next.run(request).await
}
