//! The __humans__' pages, for a logged-in user: `/__plural__` lists theirs,
//! newest first, with a form for a new one; `/__plural__/<id>` edits or
//! deletes one. Both stay live: what another tab of the same user changes
//! shows here at once.
//!
//! Written by `__command__`.
//!
//! Each page loads its data outside any `Suspend` (a resource made inside
//! one could be made twice while rendering on the server, and the browser
//! would then hydrate the page with the wrong data). The server renders
//! the page with its data, the browser takes it over without loading it
//! again, and the tab hears every change made since the data was read.

use leptos::{html, prelude::*};
use leptos_router::hooks::use_params_map;
use realtime::{Position, Realtime, Stream, UserId};

use crate::{
    __plural__::{
        __Type__, __Type__Created, __Type__Deleted, __Type__Updated, __PAGE_RULES__,
        api::{Create__Type__, Delete__Type__, Update__Type__, list___plural__, open___name__},
    },
    components::FormError,
    error::AppError,
    live_records::LiveRecords,
};

/// `/__plural__`: the user's __humans__, and a form for a new one.
#[component]
pub fn __Plural__Page() -> impl IntoView {
    let (owner, gaps) = owner_and_gaps();
    // The changes this tab heard since the list was read.
    let heard = RwSignal::new(LiveRecords::<__Type__>::default());
    let list = Resource::new(
        move || gaps.get(),
        move |_| async move {
            heard.update(LiveRecords::reloading);
            let list = list___plural__().await;
            heard.update(LiveRecords::reloaded);
            list
        },
    );
    // Only the owner's, should the tab's user change under the page.
    let theirs = move |__name__: &__Type__| Some(__name__.owner) == owner.get_untracked();
    realtime::use_event(move |__Type__Created(__name__)| {
        if theirs(&__name__) {
            heard.update(|heard| heard.put(__name__));
        }
    });
    realtime::use_event(move |__Type__Updated(__name__)| {
        if theirs(&__name__) {
            heard.update(|heard| heard.put(__name__));
        }
    });
    realtime::use_event(move |__Type__Deleted { id }| heard.update(|heard| heard.remove(id)));
    // The tab that creates a __human__ shows it when its event arrives, as
    // every other tab of the owner does.
    let create = ServerAction::<Create__Type__>::new();
    let realtime = realtime::use_realtime();

    view! {
        <section class="card" aria-labelledby="__plural__-heading">
            <h1 id="__plural__-heading">"__Humans__"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading your __humans__…"</p> }>
                {move || Suspend::new(async move {
                    let list = match list.await {
                        Ok(list) => list,
                        Err(error) => return not_loaded(error),
                    };
                    follow(realtime, owner, list.owner, list.position);
                    let loaded = list.__plural__;
                    let shown = Memo::new(move |_| heard.with(|heard| heard.over(&loaded)));
                    view! {
                        <New__Type__Form create />
                        <Show
                            when=move || !shown.read().is_empty()
                            fallback=|| {
                                view! {
                                    <p class="empty" data-testid="no-__plural__">
                                        "No __humans__ yet."
                                    </p>
                                }
                            }
                        >
                            <ul class="record-list" data-testid="__name__-list">
                                <For each=move || shown.get() key=|__name__| (__name__.id, __name__.version) let:__name__>
                                    <li>
                                        <a href=format!("/__plural__/{}", __name__.id)>{__name__.__first__}</a>
                                    </li>
                                </For>
                            </ul>
                        </Show>
                    }
                        .into_any()
                })}
            </Transition>
        </section>
    }
}

/// `/__plural__/<id>`: one of the user's __humans__, to edit or delete.
#[component]
pub fn __Type__Page() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok())
    });
    let (owner, gaps) = owner_and_gaps();
    let heard = RwSignal::new(LiveRecords::<__Type__>::default());
    let opened = Resource::new(
        move || (id.get(), gaps.get()),
        move |(id, _)| async move {
            heard.update(LiveRecords::reloading);
            let opened = match id {
                Some(id) => open___name__(id).await,
                None => Err(AppError::NotFound("There is no such __human__.".into())),
            };
            heard.update(LiveRecords::reloaded);
            opened
        },
    );
    let this_one = move |other: i64| id.get_untracked() == Some(other);
    realtime::use_event(move |__Type__Updated(__name__)| {
        if this_one(__name__.id) && Some(__name__.owner) == owner.get_untracked() {
            heard.update(|heard| heard.put(__name__));
        }
    });
    realtime::use_event(move |__Type__Deleted { id }| {
        if this_one(id) {
            heard.update(|heard| heard.remove(id));
        }
    });
    let update = ServerAction::<Update__Type__>::new();
    let delete = ServerAction::<Delete__Type__>::new();
    let realtime = realtime::use_realtime();

    view! {
        <section class="card" aria-labelledby="__name__-heading">
            <h1 id="__name__-heading">"Edit __human__"</h1>
            <p>
                <a href="/__plural__">"← All __humans__"</a>
            </p>
            <Transition fallback=|| view! { <p class="muted">"Loading the __human__…"</p> }>
                {move || Suspend::new(async move {
                    let opened = match opened.await {
                        Ok(opened) => opened,
                        Err(error) => return not_loaded(error),
                    };
                    follow(realtime, owner, opened.__name__.owner, opened.position);
                    let shown_id = opened.__name__.id;
                    let loaded = [opened.__name__];
                    // The __human__ as it is now, or `None` once deleted.
                    let current = Memo::new(move |_| {
                        heard.with(|heard| heard.over(&loaded).into_iter().find(|__name__| __name__.id == shown_id))
                    });
                    view! {
                        <Show
                            when=move || current.read().is_some()
                            fallback=|| {
                                view! {
                                    <p class="empty" data-testid="__name__-deleted">
                                        "This __human__ was deleted."
                                    </p>
                                }
                            }
                        >
                            <Edit__Type__Form current update delete />
                        </Show>
                    }
                        .into_any()
                })}
            </Transition>
        </section>
    }
}

/// Whose data the page shows, once it is loaded (the page sets it), and
/// how many times this tab missed changes on their stream for good (away
/// too long, or the server lost its history): the count is read in the
/// data's source, so the data loads again each time it rises, even while
/// it was loading. (It counts from the tab's first page on: a tab that
/// missed some before loads this page's data twice.)
fn owner_and_gaps() -> (RwSignal<Option<UserId>>, Signal<u32>) {
    let realtime = realtime::use_realtime();
    let owner = RwSignal::new(None::<UserId>);
    let gaps = Signal::derive(move || {
        owner
            .get()
            .map_or(0, |owner| realtime.missed(Stream::User(owner)).get())
    });
    (owner, gaps)
}

/// The page's data belongs to `user`: the tab hears their stream from
/// `position` (where the data was read), and only their events count.
/// Set in an effect: in the browser, once the page is on screen.
fn follow(
    realtime: Realtime,
    owner: RwSignal<Option<UserId>>,
    user: UserId,
    position: Option<Position>,
) {
    realtime.recover_from(Stream::User(user), position);
    Effect::new(move |_| owner.set(Some(user)));
}

/// A form for a new __human__, emptied once it is stored.
#[component]
fn New__Type__Form(create: ServerAction<Create__Type__>) -> impl IntoView {
    let error = Signal::derive(move || create.value().get().and_then(Result::err));
    let form = NodeRef::<html::Form>::new();
    Effect::new(move |_| {
        let created = create.value().with(|value| matches!(value, Some(Ok(_))));
        if created && let Some(form) = form.get_untracked() {
            form.reset();
        }
    });
    view! {
        <ActionForm action=create node_ref=form attr:class="stacked-form" attr:data-testid="new-__name__">
            @@NEW_INPUTS@@
            <FormError error />
            <button type="submit" class="button" disabled=move || create.pending().get()>
                "Add __human__"
            </button>
        </ActionForm>
    }
}

/// The form that edits a __human__, showing it as it is now (a field
/// changed in another tab changes here too, unless typed in here), and
/// the button that deletes it.
#[component]
fn Edit__Type__Form(
    current: Memo<Option<__Type__>>,
    update: ServerAction<Update__Type__>,
    delete: ServerAction<Delete__Type__>,
) -> impl IntoView {
    let id = move || current.get().map(|__name__| __name__.id.to_string());
    let error = Signal::derive(move || {
        update
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| delete.value().get().and_then(Result::err))
    });
    view! {
        <ActionForm action=update attr:class="stacked-form" attr:data-testid="edit-__name__">
            <input type="hidden" name="id" value=id />
            @@EDIT_INPUTS@@
            <FormError error />
            <button type="submit" class="button" disabled=move || update.pending().get()>
                "Save"
            </button>
        </ActionForm>
        <ActionForm action=delete attr:class="inline-fields">
            <input type="hidden" name="id" value=id />
            <button type="submit" class="button danger" disabled=move || delete.pending().get()>
                "Delete __human__"
            </button>
        </ActionForm>
    }
}

/// What a page shows when its data did not load: a visitor is asked to
/// log in, anyone else is told why.
fn not_loaded(error: AppError) -> AnyView {
    match error {
        AppError::NotLoggedIn => view! {
            <p class="muted" data-testid="__plural__-log-in">
                <a href="/login">"Log in"</a>
                " or "
                <a href="/signup">"sign up"</a>
                " to keep __humans__."
            </p>
        }
        .into_any(),
        error => view! { <p class="form-error">{error.to_string()}</p> }.into_any(),
    }
}
