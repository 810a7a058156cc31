//! Small components the pages share.

use std::fmt::Display;

use leptos::prelude::*;

/// The last submission's error, if it failed, as a readable message.
#[component]
pub fn FormError<E>(error: Signal<Option<E>>) -> impl IntoView
where
    E: Display + Clone + Send + Sync + 'static,
{
    move || {
        error.get().map(|error| {
            view! {
                <p class="form-error" role="alert">
                    {error.to_string()}
                </p>
            }
        })
    }
}
