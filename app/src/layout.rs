//! The frame around every page: a header with the site's name and who is
//! logged in, and the page itself below it.

use leptos::prelude::*;

use crate::auth::{AuthError, User, provide_auth, use_auth};

/// Wraps a page in the site's header, and provides the login state to it.
///
/// The login state is created here, inside `<Routes>`, because a form posted
/// without JavaScript comes back with its error in the URL, and Leptos gives
/// that error only to actions created inside `<Routes>`.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    provide_auth();
    view! {
        <header class="site-header">
            <a class="brand" href="/">
                "Leptos Realtime"
            </a>
            <ConnectionBadge />
            <nav class="account" aria-label="Account">
                <AccountStatus />
            </nav>
        </header>
        <main class="page">{children()}</main>
    }
}

/// The state of the tab's live connection: live, connecting, reconnecting.
#[component]
fn ConnectionBadge() -> impl IntoView {
    let state = realtime::use_connection_state();
    view! {
        <span
            class="connection"
            data-testid="connection-state"
            data-state=move || state.get().label()
            title="Live updates"
        >
            {move || state.get().label()}
        </span>
    }
}

/// "Logged in as …" with a log-out button, or links to log in and sign up.
#[component]
fn AccountStatus() -> impl IntoView {
    let auth = use_auth();
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(user)) => view! { <LoggedIn user /> }.into_any(),
                    Ok(None) => view! { <LoggedOut /> }.into_any(),
                    Err(error) => view! { <LoggedOut notice=error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn LoggedIn(user: User) -> impl IntoView {
    let log_out = use_auth().log_out;
    view! {
        <span class="who" data-testid="current-user">
            "Logged in as "
            <strong>{user.name}</strong>
        </span>
        <ActionForm action=log_out attr:class="inline-form">
            <button type="submit" class="button secondary">
                "Log out"
            </button>
        </ActionForm>
    }
}

/// Links for a visitor; `notice` explains why they are a visitor now (their
/// session ended) when that is news to them.
#[component]
fn LoggedOut(#[prop(optional)] notice: Option<AuthError>) -> impl IntoView {
    view! {
        {notice
            .map(|notice| {
                view! {
                    <span class="notice" role="status">
                        {notice.to_string()}
                    </span>
                }
            })}
        <a class="button secondary" href="/login">
            "Log in"
        </a>
        <a class="button" href="/signup">
            "Sign up"
        </a>
    }
}
