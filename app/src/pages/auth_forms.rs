//! The sign-up and log-in pages.
//!
//! Both are plain `<form>`s driven by Leptos's `ActionForm`: before the wasm
//! bundle has loaded they post like any HTML form (the server redirects back
//! with the error, or home on success); after hydration they post in the
//! background and show the outcome without a reload.

use leptos::prelude::*;

use crate::{
    auth::{MAX_USER_NAME_LEN, MIN_PASSWORD_LEN, use_auth},
    components::FormError,
};

/// Creates an account.
#[component]
pub fn SignUpPage() -> impl IntoView {
    let action = use_auth().sign_up;
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    view! {
        <section class="card auth-card">
            <h1>"Create an account"</h1>
            <ActionForm action attr:class="stacked-form">
                <UserNameField />
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="new-password" />
                    <small class="hint">
                        {format!("At least {MIN_PASSWORD_LEN} characters, and not a common password.")}
                    </small>
                </label>
                <FormError error />
                <button type="submit" class="button" disabled=move || action.pending().get()>
                    "Sign up"
                </button>
            </ActionForm>
            <p class="aside">"Already have an account? " <a href="/login">"Log in"</a></p>
        </section>
    }
}

/// Logs in to an existing account.
#[component]
pub fn LogInPage() -> impl IntoView {
    let action = use_auth().log_in;
    let error = Signal::derive(move || action.value().get().and_then(Result::err));
    view! {
        <section class="card auth-card">
            <h1>"Log in"</h1>
            <ActionForm action attr:class="stacked-form">
                <UserNameField />
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" />
                </label>
                <FormError error />
                <button type="submit" class="button" disabled=move || action.pending().get()>
                    "Log in"
                </button>
            </ActionForm>
            <p class="aside">"No account yet? " <a href="/signup">"Sign up"</a></p>
        </section>
    }
}

#[component]
fn UserNameField() -> impl IntoView {
    view! {
        <label>
            "User name"
            <input
                type="text"
                name="name"
                autocomplete="username"
                autocapitalize="none"
                spellcheck="false"
            />
            <small class="hint">
                {format!("Up to {MAX_USER_NAME_LEN} letters, digits, '.', '-' or '_'.")}
            </small>
        </label>
    }
}
