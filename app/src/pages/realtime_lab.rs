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
//! logged-in user is in.

use leptos::prelude::*;

use realtime::RoomStatus;

use super::{NotFoundPage, home::AnnouncementForm};
use crate::{events::SomethingHappened, topics::Topic};

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
    let status = move || match lab.get() {
        RoomStatus::Refused(reason) => format!("Refused: {reason}"),
        other => format!("{other:?}"),
    };

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
            </dl>
        </section>
        <AnnouncementForm error_flag=true />
    }
    .into_any()
}
