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
    let realtime = realtime::use_realtime();
    // Raised when the tab missed changes for good: the list loads again.
    let reload = RwSignal::new(0_u32);
    let list = Resource::new(move || reload.get(), |_| list___plural__());
    // The changes this tab heard since the list was read.
    let heard = RwSignal::new(LiveRecords::<__Type__>::default());
    realtime::use_event(move |__Type__Created(__name__)| heard.update(|heard| heard.put(__name__)));
    realtime::use_event(move |__Type__Updated(__name__)| heard.update(|heard| heard.put(__name__)));
    realtime::use_event(move |__Type__Deleted { id }| heard.update(|heard| heard.remove(id)));
    let create = ServerAction::<Create__Type__>::new();
    // The new __human__ shows at once in the tab that made it (its event
    // arrives too, and changes nothing).
    Effect::new(move |_| {
        if let Some(Ok(__name__)) = create.value().get() {
            heard.update(|heard| heard.put(__name__));
        }
    });

    view! {
        <section class="card" aria-labelledby="__plural__-heading">
            <h1 id="__plural__-heading">"__Humans__"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading your __humans__…"</p> }>
                {move || Suspend::new(async move {
                    let list = match list.await {
                        Ok(list) => list,
                        Err(AppError::NotLoggedIn) => return view! { <LogInFirst /> }.into_any(),
                        Err(error) => {
                            return view! { <p class="form-error">{error.to_string()}</p> }.into_any();
                        }
                    };
                    follow_from(realtime, list.owner, list.position, reload, heard);
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
    let reload = RwSignal::new(0_u32);
    let opened = Resource::new(
        move || (id.get(), reload.get()),
        |(id, _)| async move {
            match id {
                Some(id) => open___name__(id).await,
                None => Err(AppError::NotFound("There is no such __human__.".into())),
            }
        },
    );
    let realtime = realtime::use_realtime();
    let heard = RwSignal::new(LiveRecords::<__Type__>::default());
    let this_one = move |other: i64| id.get_untracked() == Some(other);
    realtime::use_event(move |__Type__Updated(__name__)| {
        if this_one(__name__.id) {
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
                        Err(AppError::NotLoggedIn) => return view! { <LogInFirst /> }.into_any(),
                        Err(error) => {
                            return view! { <p class="form-error">{error.to_string()}</p> }.into_any();
                        }
                    };
                    follow_from(realtime, opened.__name__.owner, opened.position, reload, heard);
                    let loaded = [opened.__name__];
                    // The __human__ as it is now, or `None` once deleted.
                    let current = Memo::new(move |_| {
                        heard.with(|heard| heard.over(&loaded).into_iter().next())
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

/// Makes the tab hear `owner`'s changes from `position` (where the data on
/// screen was read), and load the data again when it missed some for good
/// (away too long, or the server lost its history): what it heard before
/// is then either in the new data or lost with what it missed.
fn follow_from(
    realtime: Realtime,
    owner: UserId,
    position: Option<Position>,
    reload: RwSignal<u32>,
    heard: RwSignal<LiveRecords<__Type__>>,
) {
    let stream = Stream::User(owner);
    realtime.recover_from(stream.clone(), position);
    let missed = realtime.missed(stream);
    Effect::watch(
        move || missed.get(),
        move |_, _, _| {
            heard.set(LiveRecords::default());
            reload.update(|reload| *reload += 1);
        },
        false,
    );
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

#[component]
fn LogInFirst() -> impl IntoView {
    view! {
        <p class="muted" data-testid="__plural__-log-in">
            <a href="/login">"Log in"</a>
            " or "
            <a href="/signup">"sign up"</a>
            " to keep __humans__."
        </p>
    }
}
