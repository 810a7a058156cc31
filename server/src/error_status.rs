//! The HTTP status of a failed server function, decided by its error.
//!
//! Leptos answers every failed server function with 500 and the error as
//! JSON, marked by its `serverfnerror` header. This layer reads the error
//! back and gives the response the status [`AppError::status_code`] names:
//! 400 for bad input, 401 when not logged in, 429 with `Retry-After` over a
//! rate limit, 503 when the database is away, and so on.
//!
//! Nothing else is touched: pages, and the redirect Leptos gives a plain
//! HTML form post (no JavaScript yet) back to its form with the error in
//! the URL, carry no such header and keep their status.

use app::error::AppError;
use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

/// An error's JSON is small, but may echo what the request sent (a name
/// that does not exist): up to the request body limit. The body is already
/// in memory; this only bounds the copy.
const MAX_ERROR_BYTES: usize = 4 * 1024 * 1024;

/// Axum middleware: see the module documentation.
pub async fn status_from_error(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let failed_server_fn = response.status() == StatusCode::INTERNAL_SERVER_ERROR
        && response.headers().contains_key(SERVER_FN_ERROR_HEADER);
    if !failed_server_fn {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BYTES).await else {
        tracing::error!("a server function's error could not be read back");
        return Response::from_parts(parts, Body::empty());
    };
    if let Ok(error) = serde_json::from_slice::<AppError>(&bytes) {
        if let Ok(status) = StatusCode::from_u16(error.status_code()) {
            parts.status = status;
        }
        if let Some(seconds) = error.retry_after_secs() {
            parts
                .headers
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}
