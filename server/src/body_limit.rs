//! Request bodies are bounded: a body larger than
//! `MAX_REQUEST_BODY_BYTES` gets 413 before anything reads it, and one
//! that takes longer than `REQUEST_BODY_TIMEOUT_SECS` to arrive gets 408
//! (a script that sends a byte a minute would hold its connection, and
//! the memory read so far, for as long as it liked).
//!
//! The largest valid call is a few KiB (a 2,000-character message), so the
//! limit is small and the body is read into memory here, whole: a client
//! that announces its size is answered at once, and one that streams
//! without a `Content-Length` is cut off at the limit.

use std::time::Duration;

use app::error::AppError;
use axum::{
    Json,
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// How large a body may be, and how long it may take to arrive.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// Axum middleware: see the module documentation.
pub async fn limit_body(
    State(BodyLimits {
        max_bytes,
        read_timeout,
    }): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<usize>().ok());
    if announced.is_some_and(|length| length > max_bytes) {
        return too_large(max_bytes);
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(read_timeout, to_bytes(body, max_bytes)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(_)) => too_large(max_bytes),
        Err(_) => too_slow(read_timeout),
    }
}

fn too_slow(read_timeout: Duration) -> Response {
    let error = AppError::Invalid(format!(
        "This request's body did not arrive within {} s.",
        read_timeout.as_secs()
    ));
    (StatusCode::REQUEST_TIMEOUT, Json(error)).into_response()
}

fn too_large(max_bytes: usize) -> Response {
    let error = AppError::Invalid(format!(
        "This request is larger than the server accepts ({max_bytes} bytes)."
    ));
    (StatusCode::PAYLOAD_TOO_LARGE, Json(error)).into_response()
}
