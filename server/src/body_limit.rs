//! Request bodies are bounded: a body larger than
//! `MAX_REQUEST_BODY_BYTES` gets 413 before anything reads it.
//!
//! The largest valid call is a few KiB (a 2,000-character message), so the
//! limit is small and the body is read into memory here, whole: a client
//! that announces its size is answered at once, and one that streams
//! without a `Content-Length` is cut off at the limit.

use app::error::AppError;
use axum::{
    Json,
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Axum middleware: see the module documentation. The state is the limit,
/// in bytes.
pub async fn limit_body(State(max_bytes): State<usize>, request: Request, next: Next) -> Response {
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
    match to_bytes(body, max_bytes).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(_) => too_large(max_bytes),
    }
}

fn too_large(max_bytes: usize) -> Response {
    let error = AppError::Invalid(format!(
        "This request is larger than the server accepts ({max_bytes} bytes)."
    ));
    (StatusCode::PAYLOAD_TOO_LARGE, Json(error)).into_response()
}
