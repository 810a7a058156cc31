//! A chat room: its history and live messages, who is here, who is typing.

use std::{collections::HashSet, time::Duration};

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use realtime::{Members, RoomStatus, UserId};

use crate::{
    chat::{
        ChatRoom, Message, MessagePosted, RoomHistory, RoomView, Typing,
        api::{PostMessage, RenameRoom, ReportTyping, open_room},
    },
    components::FormError,
    error::AppError,
};

/// How long "… is typing" stays after the last keystroke was reported.
const TYPING_SHOWN_FOR: Duration = Duration::from_secs(4);
/// At most one "I am typing" report per this long.
const TYPING_REPORT_EVERY: Duration = Duration::from_secs(2);
/// The most messages the page shows (and keeps): the latest ones. A room
/// left open all day does not grow without end.
const MESSAGES_SHOWN: usize = 200;
/// The most people named as typing at once.
const TYPISTS_KEPT: usize = 20;

/// `/rooms/:id`: the room, for a logged-in user.
///
/// The room's data is loaded here, outside any `Suspend`: a resource made
/// inside one could be made twice while rendering on the server, and the
/// browser would then hydrate the page with the wrong data.
#[component]
pub fn RoomPage() -> impl IntoView {
    let params = use_params_map();
    let room_id = Memo::new(move |_| {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok())
    });
    // Messages sent while the connection was down are replayed when it
    // comes back; only when they cannot be (too long away, or the server
    // lost its history) is the history loaded again.
    let missed = Memo::new(move |_| {
        room_id
            .get()
            .map(|id| realtime::Stream::room(&ChatRoom(id)))
    });
    let realtime = realtime::use_realtime();
    let gaps = Signal::derive(move || {
        missed
            .get()
            .map_or(0, |stream| realtime.missed(stream).get())
    });
    let history = Resource::new(
        move || (room_id.get(), gaps.get()),
        |(id, _)| async move {
            match id {
                Some(id) => open_room(id).await,
                None => Err(AppError::NotFound("There is no such room.".into())),
            }
        },
    );
    // This tab's own messages, kept here, across reloads of the history: a
    // reload may read the history before a message posted meanwhile is
    // stored, and the message never comes back to its sender live (it is
    // sent to everyone but the caller).
    let post = ServerAction::<PostMessage>::new();
    let posted = RwSignal::new(Vec::<Message>::new());
    Effect::new(move |_| {
        if let Some(Ok(message)) = post.value().get() {
            posted.update(|posted| keep_latest(posted, message));
        }
    });
    view! {
        <Transition fallback=|| view! { <p class="muted">"Opening the room…"</p> }>
            {move || Suspend::new(async move {
                match history.await {
                    // A new `Room` for each room (and each reload of it):
                    // the old one unmounts with everything it holds.
                    Ok(history) => view! { <Room history post posted /> }.into_any(),
                    Err(AppError::NotLoggedIn) => view! { <LogInToJoin /> }.into_any(),
                    Err(error) => view! { <NoSuchRoom error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn LogInToJoin() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Log in to join the conversation"</h1>
            <p>
                <a href="/login">"Log in"</a>
                " or "
                <a href="/signup">"sign up"</a>
                " to read and post messages."
            </p>
        </section>
    }
}

/// A room on screen, and every live subscription it needs, all removed when
/// the component unmounts.
#[component]
fn Room(
    history: RoomHistory,
    post: ServerAction<PostMessage>,
    posted: RwSignal<Vec<Message>>,
) -> impl IntoView {
    let id = history.room.id;
    // From where the history was read: what followed is replayed first.
    let membership = realtime::use_room_from(ChatRoom(id), history.position);
    let members = realtime::use_presence(move || Some(ChatRoom(id)));
    let typists = use_typists(id, history.viewer);

    // Messages received live since the history was loaded.
    let live = RwSignal::new(Vec::<Message>::new());
    realtime::use_event(move |MessagePosted(message)| {
        if message.room_id == id {
            live.update(|live| keep_latest(live, message));
        }
    });
    let renamed = RwSignal::new(None::<RoomView>);
    realtime::use_event(move |view: RoomView| {
        if view.id == id {
            renamed.set(Some(view));
        }
    });

    view! { <RoomScreen history live posted post renamed membership members typists /> }
}

/// A room that cannot be shown, and why.
#[component]
fn NoSuchRoom(#[prop(optional)] error: Option<AppError>) -> impl IntoView {
    let error = error.unwrap_or_else(|| AppError::NotFound("There is no such room.".into()));
    view! {
        <section class="card">
            <h1>"This room is not available"</h1>
            <p class="form-error" role="alert">
                {error.to_string()}
            </p>
            <a href="/">"Back to the rooms"</a>
        </section>
    }
}

#[component]
fn RoomScreen(
    history: RoomHistory,
    live: RwSignal<Vec<Message>>,
    posted: RwSignal<Vec<Message>>,
    post: ServerAction<PostMessage>,
    renamed: RwSignal<Option<RoomView>>,
    membership: Signal<RoomStatus>,
    members: Signal<Members>,
    typists: Signal<Vec<String>>,
) -> impl IntoView {
    let room = history.room.clone();
    let room_id = room.id;
    let name = {
        let original = room.name.clone();
        move || {
            renamed
                .get()
                .filter(|view| view.id == room_id)
                .map_or_else(|| original.clone(), |view| view.name)
        }
    };
    let messages = Memo::new(move |_| {
        let mut received = live.get();
        received.extend(posted.get());
        merge_messages(&history.messages, &received, room_id)
    });
    let is_creator = room.created_by == history.viewer;

    view! {
        <div class="room">
            <header class="room-header">
                <a class="back" href="/">
                    "← All rooms"
                </a>
                <h1 data-testid="room-name">{name}</h1>
                <MembershipBadge membership />
            </header>
            <div class="room-body">
                <section class="card conversation" aria-label="Messages">
                    <Show
                        when=move || !messages.read().is_empty()
                        fallback=|| {
                            view! {
                                <p class="empty" data-testid="no-messages">
                                    "No messages yet. Say hello!"
                                </p>
                            }
                        }
                    >
                        <ol class="messages" data-testid="messages">
                            <For each=move || messages.get() key=|message| message.id let:message>
                                <li class="message" data-testid="message">
                                    <span class="author">{message.author}</span>
                                    <span class="body">{message.body}</span>
                                </li>
                            </For>
                        </ol>
                    </Show>
                    <p class="typing" data-testid="typing" aria-live="polite">
                        {move || typing_line(&typists.get())}
                    </p>
                    <MessageForm room_id post />
                </section>
                <aside class="card people" aria-labelledby="people-heading">
                    <h2 id="people-heading">"Here now"</h2>
                    <ul class="presence" data-testid="presence">
                        <For each=move || members.get().listed key=|member| member.user let:member>
                            <li>{member.name}</li>
                        </For>
                    </ul>
                    <Show when=move || { members.get().more > 0 }>
                        <p class="more" data-testid="presence-more">
                            {move || format!("and {} more", members.get().more)}
                        </p>
                    </Show>
                    <Show when=move || is_creator>
                        <RenameForm room_id renamed />
                    </Show>
                </aside>
            </div>
        </div>
    }
}

#[component]
fn MembershipBadge(membership: Signal<RoomStatus>) -> impl IntoView {
    let label = move || match membership.get() {
        RoomStatus::Joining => "joining…".to_owned(),
        RoomStatus::Joined => "in the room".to_owned(),
        RoomStatus::Refused(reason) => reason,
        RoomStatus::Left => "not in the room".to_owned(),
    };
    let state = move || match membership.get() {
        RoomStatus::Joining => "joining",
        RoomStatus::Joined => "joined",
        RoomStatus::Refused(_) => "refused",
        RoomStatus::Left => "left",
    };
    view! {
        <span class="membership" data-testid="membership" data-state=state>
            {label}
        </span>
    }
}

/// The form to post a message, which also reports typing.
#[component]
fn MessageForm(room_id: i64, post: ServerAction<PostMessage>) -> impl IntoView {
    let report = ServerAction::<ReportTyping>::new();
    let body = NodeRef::<leptos::html::Input>::new();
    // At most one "typing" report per TYPING_REPORT_EVERY; a sent message
    // ends the typing, so the next keystroke reports again at once.
    let cooling_down = StoredValue::new(false);
    // The server sends the message to everyone else; the page keeps the
    // copy the server function returned (`RoomPage`), and the form clears
    // its field, unless the next message is already being written in it.
    Effect::new(move |_| {
        if let Some(Ok(message)) = post.value().get() {
            cooling_down.set_value(false);
            if let Some(input) = body.get_untracked()
                && input.value().trim() == message.body
            {
                input.set_value("");
            }
        }
    });
    let on_input = move |_| {
        if !cooling_down.get_value() {
            cooling_down.set_value(true);
            report.dispatch(ReportTyping { room_id });
            set_timeout(
                move || {
                    // The page may be gone by now.
                    cooling_down.try_update_value(|cooling| *cooling = false);
                },
                TYPING_REPORT_EVERY,
            );
        }
    };
    let error = Signal::derive(move || post.value().get().and_then(Result::err));
    view! {
        <ActionForm action=post attr:class="message-form">
            <input type="hidden" name="room_id" value=room_id />
            <label class="grow">
                <span class="visually-hidden">"Message"</span>
                <input
                    type="text"
                    name="body"
                    placeholder="Write a message"
                    autocomplete="off"
                    node_ref=body
                    on:input=on_input
                />
            </label>
            <button type="submit" class="button" disabled=move || post.pending().get()>
                "Send"
            </button>
        </ActionForm>
        <FormError error />
    }
}

/// Renames the room (shown to its creator).
#[component]
fn RenameForm(room_id: i64, renamed: RwSignal<Option<RoomView>>) -> impl IntoView {
    let rename = ServerAction::<RenameRoom>::new();
    Effect::new(move |_| {
        if let Some(Ok(room)) = rename.value().get() {
            renamed.set(Some(RoomView {
                id: room.id,
                name: room.name,
            }));
        }
    });
    let error = Signal::derive(move || rename.value().get().and_then(Result::err));
    view! {
        <h2>"Rename"</h2>
        <ActionForm action=rename attr:class="stacked-form">
            <input type="hidden" name="room_id" value=room_id />
            <label>
                "New name"
                <input type="text" name="name" />
            </label>
            <FormError error />
            <button type="submit" class="button secondary" disabled=move || rename.pending().get()>
                "Rename room"
            </button>
        </ActionForm>
    }
}

/// Adds a live message, keeping only the latest [`MESSAGES_SHOWN`].
fn keep_latest(live: &mut Vec<Message>, message: Message) {
    live.push(message);
    let excess = live.len().saturating_sub(MESSAGES_SHOWN);
    live.drain(..excess);
}

/// The history, then the live messages not in it, each once, in order: the
/// latest [`MESSAGES_SHOWN`] of them.
fn merge_messages(history: &[Message], live: &[Message], room_id: i64) -> Vec<Message> {
    let mut seen = HashSet::with_capacity(history.len() + live.len());
    let mut all: Vec<Message> = history
        .iter()
        .chain(live.iter().filter(|message| message.room_id == room_id))
        .filter(|message| seen.insert(message.id))
        .cloned()
        .collect();
    all.sort_by_key(|message| message.id);
    let excess = all.len().saturating_sub(MESSAGES_SHOWN);
    all.drain(..excess);
    all
}

fn typing_line(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [first, second] => format!("{first} and {second} are typing…"),
        [first, rest @ ..] => format!("{first} and {} others are typing…", rest.len()),
    }
}

/// Who else is typing in the room: each name stays for a few seconds after
/// the last report, and goes at once when they post.
fn use_typists(room_id: i64, me: UserId) -> Signal<Vec<String>> {
    // (user, name, report number)
    let typists = RwSignal::new(Vec::<(UserId, String, u64)>::new());
    let reports = StoredValue::new(0u64);
    realtime::use_event(move |typing: Typing| {
        if typing.user == me || typing.room_id != room_id {
            // My own other tab, or another room.
            return;
        }
        let report = reports.get_value() + 1;
        reports.set_value(report);
        let user = typing.user;
        typists.update(|typists| {
            typists.retain(|(other, _, _)| *other != user);
            typists.push((user, typing.name, report));
            let excess = typists.len().saturating_sub(TYPISTS_KEPT);
            typists.drain(..excess);
        });
        set_timeout(
            move || {
                // The page may be gone by now.
                typists.try_update(|typists| {
                    typists.retain(|(other, _, number)| !(*other == user && *number == report));
                });
            },
            TYPING_SHOWN_FOR,
        );
    });
    realtime::use_event(move |MessagePosted(message)| {
        typists.update(|typists| typists.retain(|(user, _, _)| *user != message.author_id));
    });
    Signal::derive(move || typists.get().into_iter().map(|(_, name, _)| name).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64, room_id: i64) -> Message {
        Message {
            id,
            room_id,
            author_id: UserId(1),
            author: "ada".into(),
            body: format!("message {id}"),
            created_at: 0,
        }
    }

    #[test]
    fn live_messages_are_added_once_in_order_for_this_room_only() {
        let history = [message(1, 7), message(2, 7)];
        let live = [message(3, 7), message(2, 7), message(9, 8), message(3, 7)];
        let ids: Vec<i64> = merge_messages(&history, &live, 7)
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn a_long_day_keeps_only_the_latest_messages() {
        let history: Vec<Message> = (1..=100).map(|id| message(id, 7)).collect();
        let mut live = Vec::new();
        for id in 101..=1000 {
            keep_latest(&mut live, message(id, 7));
        }
        assert_eq!(live.len(), MESSAGES_SHOWN);
        let shown = merge_messages(&history, &live, 7);
        assert_eq!(shown.len(), MESSAGES_SHOWN);
        assert_eq!(shown.first().map(|m| m.id), Some(801));
        assert_eq!(shown.last().map(|m| m.id), Some(1000));
    }

    #[test]
    fn the_typing_line_names_who_is_typing() {
        assert_eq!(typing_line(&[]), "");
        assert_eq!(typing_line(&["Ada".into()]), "Ada is typing…");
        assert_eq!(
            typing_line(&["Ada".into(), "Grace".into()]),
            "Ada and Grace are typing…"
        );
        assert_eq!(
            typing_line(&["Ada".into(), "Grace".into(), "Alan".into()]),
            "Ada and 2 others are typing…"
        );
    }
}
