//! The landing page.

use leptos::prelude::*;

use crate::auth::use_auth;

/// Greets the visitor by name when logged in.
#[component]
pub fn HomePage() -> impl IntoView {
    let auth = use_auth();
    let greeting = move || {
        auth.user
            .get()
            .and_then(|user| user.ok().flatten())
            .map(|user| format!("Welcome back, {}!", user.name))
            .unwrap_or_else(|| "Welcome!".to_owned())
    };
    view! {
        <section class="card">
            <Transition fallback=|| view! { <h1>"Welcome!"</h1> }>
                <h1 data-testid="greeting">{greeting}</h1>
            </Transition>
            <p>
                "A full-stack Rust template: Leptos renders on the server and hydrates in the browser, "
                "axum serves it, sqlx stores the data and tower-sessions knows who you are."
            </p>
        </section>
    }
}
