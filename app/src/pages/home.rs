//! The landing page: a greeting, and the two ways to reach other people
//! (an announcement to every tab, a notification to a user).
// @chat-begin
//! It also lists the chat's rooms.
// @chat-end

// @chat-begin
use std::collections::HashSet;
// @chat-end

use leptos::prelude::*;
// @chat-begin
use leptos_router::hooks::use_query_map;
// @chat-end

// @chat-begin
use crate::chat::{
    ROOM_PAGE_LEN, RoomCreated, RoomSummary,
    api::{CreateRoom, list_rooms},
};
// @chat-end
use crate::{
    auth::{Auth, User, use_auth},
    components::FormError,
    events::{BroadcastEvent, Notify},
};

/// Greets the visitor and offers the forms.
// @chat-begin
/// Lists the rooms too.
// @chat-end
///
/// What depends on the login is read with `.await` inside `Suspend`, the
/// way Leptos hydrates reliably: the server's HTML and the browser's first
/// render come from the same resolved value.
#[component]
pub fn HomePage() -> impl IntoView {
    let auth = use_auth();
    view! {
        <section class="card intro">
            <Transition fallback=|| view! { <h1>"Welcome!"</h1> }>
                {move || Suspend::new(async move {
                    let greeting = match logged_in_user(auth).await {
                        Some(user) => format!("Welcome back, {}!", user.name),
                        None => "Welcome!".to_owned(),
                    };
                    view! { <h1 data-testid="greeting">{greeting}</h1> }
                })}
            </Transition>
            <p>
                "Everything here is live. Open this page in two browsers side by side: what "
                "one does, the other sees at once."
            </p>
        </section>
        <div class="columns">
            // @chat-begin
            <RoomList />
            // @chat-end
            <div class="stack">
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match logged_in_user(auth).await {
                            Some(_) => view! { <AnnouncementForm /> <NotifyForm /> }.into_any(),
                            None => view! { <LogInToAnnounce /> }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </div>
    }
}

/// The logged-in user, once the login state has loaded.
async fn logged_in_user(auth: Auth) -> Option<User> {
    auth.user.await.ok().flatten()
}

// @chat-begin
/// The rooms, a page at a time, newest first; on the first page, rooms
/// created elsewhere appear live.
#[component]
fn RoomList() -> impl IntoView {
    let auth = use_auth();
    let realtime = realtime::use_realtime();
    let create = ServerAction::<CreateRoom>::new();
    // `/?before=<id>`: the page of rooms older than that one.
    let query = use_query_map();
    let before = Memo::new(move |_| {
        query
            .read()
            .get("before")
            .and_then(|id| id.parse::<i64>().ok())
    });
    // Loaded again when new rooms may have been missed for good (the
    // server lost its history, or the tab was away too long).
    let gaps = realtime.missed(realtime::Stream::Everyone);
    let rooms = Resource::new(
        move || (create.version().get(), before.get(), gaps.get()),
        |(_, before, _)| list_rooms(before),
    );
    // Rooms created since the list was loaded, newest first.
    let created = RwSignal::new(Vec::<RoomSummary>::new());
    realtime::use_event(move |RoomCreated(room)| {
        created.update(|rooms| {
            rooms.insert(0, room);
            rooms.truncate(ROOM_PAGE_LEN);
        })
    });
    let error = Signal::derive(move || create.value().get().and_then(Result::err));

    view! {
        <section class="card" aria-labelledby="rooms-heading">
            <h2 id="rooms-heading">"Rooms"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading rooms…"</p> }>
                {move || Suspend::new(async move {
                    let page = match rooms.await {
                        Ok(page) => page,
                        Err(error) => {
                            return view! { <p class="form-error">{error.to_string()}</p> }.into_any();
                        }
                    };
                    // Rooms created after the list was read, even before the
                    // socket opens, arrive as events (or, when the server
                    // could not say where it read from, the list loads
                    // again once the socket is open).
                    realtime.recover_from(realtime::Stream::Everyone, page.position);
                    let first_page = before.get_untracked().is_none();
                    let older = page.more.then(|| page.rooms.last().map(|room| room.id)).flatten();
                    let loaded = page.rooms;
                    let all = Memo::new(move |_| {
                        if first_page {
                            merge_rooms(&created.get(), &loaded)
                        } else {
                            loaded.clone()
                        }
                    });
                    view! {
                        <Show
                            when=move || !all.read().is_empty()
                            fallback=|| {
                                view! {
                                    <p class="empty" data-testid="no-rooms">
                                        "No rooms yet. Create the first one."
                                    </p>
                                }
                            }
                        >
                            <ul class="record-list" data-testid="room-list">
                                <For each=move || all.get() key=|room| room.id let:room>
                                    <li>
                                        <a href=format!("/rooms/{}", room.id)>{room.name}</a>
                                    </li>
                                </For>
                            </ul>
                        </Show>
                        {(older.is_some() || !first_page)
                            .then(|| {
                                view! {
                                    <nav class="pages" aria-label="More rooms">
                                        {(!first_page)
                                            .then(|| view! { <a href="/">"← Newest rooms"</a> })}
                                        {older
                                            .map(|id| {
                                                view! {
                                                    <a href=format!("/?before={id}")>"Older rooms →"</a>
                                                }
                                            })}
                                    </nav>
                                }
                            })}
                    }
                        .into_any()
                })}
            </Transition>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    if logged_in_user(auth).await.is_none() {
                        return view! {
                            <p class="muted">
                                <a href="/login">"Log in"</a>
                                " to create a room."
                            </p>
                        }
                            .into_any();
                    }
                    view! {
                        <ActionForm action=create attr:class="inline-fields">
                            <label class="grow">
                                <span class="visually-hidden">"Room name"</span>
                                <input type="text" name="name" placeholder="New room name" />
                            </label>
                            <button type="submit" class="button" disabled=move || create.pending().get()>
                                "Create room"
                            </button>
                        </ActionForm>
                        <FormError error />
                    }
                        .into_any()
                })}
            </Transition>
        </section>
    }
}

/// Rooms created live first (newest first), then the loaded ones, each once.
fn merge_rooms(created: &[RoomSummary], loaded: &[RoomSummary]) -> Vec<RoomSummary> {
    let mut seen = HashSet::with_capacity(created.len() + loaded.len());
    created
        .iter()
        .chain(loaded)
        .filter(|room| seen.insert(room.id))
        .cloned()
        .collect()
}
// @chat-end

/// What a visitor sees where the announcement form would be.
#[component]
fn LogInToAnnounce() -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="announce-heading">
            <h2 id="announce-heading">"Announce"</h2>
            <p class="muted" data-testid="announce-log-in">
                <a href="/login">"Log in"</a>
                " to announce something to every open tab."
            </p>
        </section>
    }
}

/// Sends a `SomethingHappened` to every open tab (for logged-in users);
/// with `error_flag`, the form can mark it as an error.
#[component]
pub(super) fn AnnouncementForm(#[prop(optional)] error_flag: bool) -> impl IntoView {
    let announce = ServerAction::<BroadcastEvent>::new();
    let error = Signal::derive(move || announce.value().get().and_then(Result::err));
    let message = NodeRef::<leptos::html::Input>::new();
    clear_on_success(announce, message);
    view! {
        <section class="card" aria-labelledby="announce-heading">
            <h2 id="announce-heading">"Announce"</h2>
            <p class="muted">"Every open tab shows it, logged in or not."</p>
            <ActionForm action=announce attr:class="stacked-form">
                <label>
                    "Announcement"
                    <input
                        type="text"
                        name="event[message]"
                        placeholder="John created an account!"
                        node_ref=message
                    />
                </label>
                <Show when=move || error_flag>
                    <label class="checkbox">
                        <input type="checkbox" name="event[isError]" value="true" />
                        "Mark it as an error"
                    </label>
                </Show>
                <FormError error />
                <button type="submit" class="button" disabled=move || announce.pending().get()>
                    "Announce"
                </button>
            </ActionForm>
        </section>
    }
}

/// Sends a notification to one user, by name.
#[component]
fn NotifyForm() -> impl IntoView {
    let notify = ServerAction::<Notify>::new();
    let error = Signal::derive(move || notify.value().get().and_then(Result::err));
    let text = NodeRef::<leptos::html::Input>::new();
    clear_on_success(notify, text);
    let sent = move || matches!(notify.value().get(), Some(Ok(())));
    view! {
        <section class="card" aria-labelledby="notify-heading">
            <h2 id="notify-heading">"Notify someone"</h2>
            <p class="muted">"It appears in every tab they have open."</p>
            <ActionForm action=notify attr:class="stacked-form">
                <label>
                    "To (user name)"
                    <input type="text" name="to" autocapitalize="none" spellcheck="false" />
                </label>
                <label>
                    "Message"
                    <input type="text" name="text" node_ref=text />
                </label>
                <FormError error />
                <Show when=sent>
                    <p class="success" role="status">
                        "Sent, if someone has that name."
                    </p>
                </Show>
                <button type="submit" class="button" disabled=move || notify.pending().get()>
                    "Send notification"
                </button>
            </ActionForm>
        </section>
    }
}

/// Empties `input` each time `action` succeeds.
fn clear_on_success<S>(action: ServerAction<S>, input: NodeRef<leptos::html::Input>)
where
    S: leptos::server_fn::ServerFn + Clone + Send + Sync + 'static,
    S::Output: Send + Sync + 'static,
    S::Error: Send + Sync + 'static,
{
    Effect::new(move |_| {
        let succeeded = action.value().with(|value| matches!(value, Some(Ok(_))));
        if succeeded && let Some(input) = input.get_untracked() {
            input.set_value("");
        }
    });
}

// @chat-begin
#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: i64) -> RoomSummary {
        RoomSummary {
            id,
            name: format!("room {id}"),
            created_by: realtime::UserId(1),
            created_at: 0,
        }
    }

    #[test]
    fn live_rooms_come_first_and_each_room_once() {
        let created = [room(9), room(8)];
        let loaded = [room(8), room(5), room(3)];
        let ids: Vec<i64> = merge_rooms(&created, &loaded)
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [9, 8, 5, 3]);
    }
}
// @chat-end
