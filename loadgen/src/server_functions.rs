//! The server functions the load generator calls, each one form post:
//! their paths and the bodies they take. The ordinary clients and the
//! attackers call them alike; only what they send differs.

use crate::http::{Connection, HttpError, Response, form_encode};

/// Signs up `name`; a success answers 200 with the new session's cookie.
pub async fn sign_up(
    connection: &mut Connection,
    name: &str,
    password: &str,
) -> Result<Response, HttpError> {
    post_credentials(connection, "/api/auth/sign_up", name, password).await
}

/// Logs in as `name`.
pub async fn log_in(
    connection: &mut Connection,
    name: &str,
    password: &str,
) -> Result<Response, HttpError> {
    post_credentials(connection, "/api/auth/log_in", name, password).await
}

/// Announces `message` to everyone (`broadcast_event`), as the user of
/// `cookie`: announcing takes a logged-in user.
pub async fn announce(
    connection: &mut Connection,
    cookie: &str,
    message: &str,
) -> Result<Response, HttpError> {
    let body = format!("event%5Bmessage%5D={}", form_encode(message));
    connection
        .post_form("/api/events/broadcast", &body, Some(cookie))
        .await
}

/// Posts the form of a sign-up or a log-in, which take the same fields.
async fn post_credentials(
    connection: &mut Connection,
    path: &str,
    name: &str,
    password: &str,
) -> Result<Response, HttpError> {
    let body = format!(
        "name={}&password={}",
        form_encode(name),
        form_encode(password)
    );
    connection.post_form(path, &body, None).await
}
