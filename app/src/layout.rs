//! The frame around every page: a header with the site's name, the live
//! connection's state and who is logged in; the notices that arrive on any
//! page (announcements, notifications); and the page itself.

use leptos::prelude::*;

use crate::{
    auth::{User, provide_auth, use_auth},
    error::AppError,
    events::{Notification, SomethingHappened, notice_positions},
};

/// How many notices stay on screen; older ones make room.
const MAX_NOTICES: usize = 5;

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
                {crate::TITLE}
            </a>
            // scripts/new-resource adds a link to each resource's page above this line.
            <ConnectionBadge />
            <nav class="account" aria-label="Account">
                <AccountStatus />
            </nav>
        </header>
        <Notices />
        <main class="page">{children()}</main>
    }
}

/// The state of the tab's live connection: live, connecting, reconnecting.
///
/// Its `data-subscriptions` and `data-memberships` attributes count what the
/// page holds: the end-to-end tests check they return to where they were
/// when a component unmounts.
#[component]
fn ConnectionBadge() -> impl IntoView {
    let realtime = realtime::use_realtime();
    let state = realtime.state();
    let counts = realtime.counts();
    view! {
        <span
            class="connection"
            data-testid="connection-state"
            data-state=move || state.get().label()
            data-subscriptions=move || counts.get().subscriptions
            data-memberships=move || counts.get().memberships
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
        <a href="/people">"People"</a>
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
fn LoggedOut(#[prop(optional)] notice: Option<AppError>) -> impl IntoView {
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

/// One notice on screen.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Notice {
    id: u64,
    kind: &'static str,
    text: String,
}

/// Announcements (to every tab) and notifications (to this user), as they
/// arrive, until dismissed.
#[component]
fn Notices() -> impl IntoView {
    let realtime = realtime::use_realtime();
    // Read while the page is rendered, applied while it hydrates, before
    // the socket's first connection asks from there.
    let positions = Resource::new(|| (), |_| notice_positions());
    let notices = RwSignal::new(Vec::<Notice>::new());
    let next_id = StoredValue::new(0u64);
    let show = move |kind: &'static str, text: String| {
        let id = next_id.get_value() + 1;
        next_id.set_value(id);
        notices.update(|notices| {
            notices.push(Notice { id, kind, text });
            let excess = notices.len().saturating_sub(MAX_NOTICES);
            notices.drain(..excess);
        });
    };
    realtime::use_event(move |event: SomethingHappened| {
        let kind = if event.is_error {
            "error"
        } else {
            "announcement"
        };
        let text = match event.author {
            Some(author) => format!("{author}: {}", event.message),
            None => event.message,
        };
        show(kind, text);
    });
    realtime::use_event(move |notification: Notification| {
        show(
            "notification",
            format!("{}: {}", notification.from, notification.text),
        );
    });
    // The board keeps its height, so a notice never moves the page; the
    // newest is at the bottom, scrolled to (scrolling is no layout shift).
    let board = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        notices.track();
        if let Some(board) = board.get() {
            board.set_scroll_top(board.scroll_height());
        }
    });
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                for (stream, position) in positions.await.unwrap_or_default() {
                    realtime.recover_from(stream, position);
                }
            })}
        </Suspense>
        <section class="notices" aria-label="Notices">
            <div class="notices-board" node_ref=board aria-live="polite">
                <Show when=move || notices.with(Vec::is_empty)>
                    <p class="notices-empty">"Announcements and notifications appear here."</p>
                </Show>
                <For each=move || notices.get() key=|notice| notice.id let:notice>
                    <article class="notice-item" data-testid="notice" data-kind=notice.kind>
                        <p>{notice.text}</p>
                        <button
                            type="button"
                            class="dismiss"
                            aria-label="Dismiss"
                            on:click=move |_| {
                                notices.update(|notices| notices.retain(|n| n.id != notice.id))
                            }
                        >
                            "×"
                        </button>
                    </article>
                </For>
            </div>
        </section>
    }
}
