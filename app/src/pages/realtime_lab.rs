//! `/dev/realtime`: a page for trying the real-time hooks that no other
//! page uses, and for the end-to-end tests of them. Debug builds only: a release
//! build shows "page not found".
//!
//! Each announcement sent from this page reaches:
//! - a `use_event_once` handler: it keeps the first one only;
//! - `use_latest`: the last one;
//! - four `use_event` handlers. The second fails (returns an error) for an
//!   announcement marked as an error, the third panics on the message
//!   "panic"; the first and the last count what they receive, and keep
//!   counting: one handler's failure does not stop the others.
//!
//! The page also joins the topic `lab` (`use_room`), which visitors may
//! not: its status shows how a refused join reaches the page, and that a
//! logged-in user is in. `?topic=<name>` joins another topic too, the
//! name taken as it is (a name too long for the protocol is refused by
//! the tab itself).
//!
//! And a late reader: a component mounted on demand with where everyone's
//! stream stood when a button was pressed (`recover_from`), as a page
//! loaded over HTTP is. It lists the announcements after that position,
//! those the tab heard before it was mounted included.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use realtime::{Position, RoomStatus, Stream};

use super::{NotFoundPage, home::AnnouncementForm};
use crate::{
    events::{NoticePositions, SomethingHappened},
    topics::Topic,
};

/// The topic the page joins.
pub const LAB_TOPIC: &str = "lab";

/// The message that makes the third handler panic.
pub const PANIC_MESSAGE: &str = "panic";

#[component]
pub fn RealtimeLab() -> impl IntoView {
    if !cfg!(debug_assertions) {
        return view! { <NotFoundPage /> }.into_any();
    }
    let first = RwSignal::new(None::<String>);
    realtime::use_event_once(move |event: SomethingHappened| first.set(Some(event.message)));
    let latest = realtime::use_latest::<SomethingHappened>();

    let before = RwSignal::new(0u32);
    let after = RwSignal::new(0u32);
    realtime::use_event(move |_: SomethingHappened| before.update(|count| *count += 1));
    realtime::use_event(|event: SomethingHappened| {
        if event.is_error {
            Err(format!(
                "this handler refuses error announcements ({})",
                event.message
            ))
        } else {
            Ok(())
        }
    });
    realtime::use_event(|event: SomethingHappened| {
        if event.message == PANIC_MESSAGE {
            panic!("a handler panicked on purpose");
        }
    });
    realtime::use_event(move |_: SomethingHappened| after.update(|count| *count += 1));
    let lab = realtime::use_room(Topic(LAB_TOPIC.into()));
    let status = move || shown(lab.get());
    let asked = use_query_map().get_untracked().get("topic");

    view! {
        <section class="card">
            <h1>"Real-time hooks"</h1>
            <dl class="facts">
                <dt>"First announcement (use_event_once)"</dt>
                <dd data-testid="first">{move || first.get().unwrap_or_else(|| "—".into())}</dd>
                <dt>"Latest announcement (use_latest)"</dt>
                <dd data-testid="latest">
                    {move || latest.get().map(|event| event.message).unwrap_or_else(|| "—".into())}
                </dd>
                <dt>"Received by the handler before the failing ones"</dt>
                <dd data-testid="before">{before}</dd>
                <dt>"Received by the handler after them"</dt>
                <dd data-testid="after">{after}</dd>
                <dt>"Joining the topic “lab” (use_room)"</dt>
                <dd data-testid="room-status">{status}</dd>
                {asked.map(|topic| view! { <AskedTopic topic /> })}
            </dl>
        </section>
        <AnnouncementForm error_flag=true />
        <LateReaderCard />
    }
    .into_any()
}

/// A room's status as the page shows it.
fn shown(status: RoomStatus) -> String {
    match status {
        RoomStatus::Refused(reason) => format!("Refused: {reason}"),
        other => format!("{other:?}"),
    }
}

/// The topic `?topic=` names, joined as it is.
#[component]
fn AskedTopic(topic: String) -> impl IntoView {
    let asked = realtime::use_room(Topic(topic));
    view! {
        <dt>"Joining the topic the address names"</dt>
        <dd data-testid="asked-room-status">{move || shown(asked.get())}</dd>
    }
}

/// Reads where everyone's stream stands, then mounts a [`LateReader`]
/// from there when asked.
#[component]
fn LateReaderCard() -> impl IntoView {
    let read = ServerAction::<NoticePositions>::new();
    let position = Signal::derive(move || {
        let positions = read.value().get()?.ok()?;
        positions
            .into_iter()
            .find_map(|(stream, position)| (stream == Stream::Everyone).then_some(position))
            .flatten()
    });
    let shown = RwSignal::new(false);
    view! {
        <section class="card">
            <h2>"A late reader (recover_from)"</h2>
            <button
                class="button"
                data-testid="read-position"
                on:click=move |_| {
                    read.dispatch(NoticePositions {});
                }
            >
                "Note where the stream stands"
            </button>
            <span data-testid="position-read">
                {move || position.get().map(|at| at.offset.to_string()).unwrap_or_default()}
            </span>
            <button class="button" data-testid="show-late-reader" on:click=move |_| shown.set(true)>
                "Show the late reader"
            </button>
            <Show when=move || shown.get()>
                <LateReader position=position.get_untracked() />
            </Show>
        </section>
    }
}

/// The announcements after `position`, as a page loaded from there lists
/// them.
#[component]
fn LateReader(position: Option<Position>) -> impl IntoView {
    let heard = RwSignal::new(Vec::<String>::new());
    realtime::use_realtime().recover_from(Stream::Everyone, position);
    realtime::use_event(move |event: SomethingHappened| {
        heard.update(|heard| heard.push(event.message));
    });
    view! { <p data-testid="late-heard">{move || heard.get().join(", ")}</p> }
}
