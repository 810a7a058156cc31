//! The login state every page shares: the three form actions and the current
//! user, which is fetched again whenever one of the actions completes.

use leptos::prelude::*;

use super::{
    User, UserId,
    api::{LogIn, LogOut, SignUp, current_user},
};
use crate::error::AppError;

/// Shared through context by [`provide_auth`]; read it with [`use_auth`].
#[derive(Clone, Copy)]
pub struct Auth {
    pub sign_up: ServerAction<SignUp>,
    pub log_in: ServerAction<LogIn>,
    pub log_out: ServerAction<LogOut>,
    /// Who is logged in: `Ok(None)` for a visitor.
    pub user: Resource<Result<Option<User>, AppError>>,
}

/// Creates the login state for the whole application. Call once, in `App`.
pub fn provide_auth() {
    let sign_up = ServerAction::<SignUp>::new();
    let log_in = ServerAction::<LogIn>::new();
    let log_out = ServerAction::<LogOut>::new();
    let user = Resource::new(
        move || {
            (
                sign_up.version().get(),
                log_in.version().get(),
                log_out.version().get(),
            )
        },
        |_| current_user(),
    );
    provide_context(Auth {
        sign_up,
        log_in,
        log_out,
        user,
    });
    reconnect_when_the_user_changes(user);
}

/// A WebSocket belongs to whoever was logged in when it opened. When that
/// changes (log-in, log-out), the tab opens a new one.
fn reconnect_when_the_user_changes(user: Resource<Result<Option<User>, AppError>>) {
    let realtime = realtime::use_realtime();
    // The effect's value is the last settled user id: `None` until the
    // first answer, `Some(None)` for a visitor.
    Effect::new(move |last: Option<Option<Option<UserId>>>| {
        let last = last.flatten();
        // `None` while a new answer is loading: keep the last one.
        let now = user
            .get()
            .map(|answer| answer.ok().flatten().map(|user| user.id));
        match (now, last) {
            (Some(now), Some(last)) if now != last => {
                realtime.reconnect();
                Some(now)
            }
            (Some(now), _) => Some(now),
            (None, last) => last,
        }
    });
}

/// The login state provided by [`provide_auth`].
pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}
