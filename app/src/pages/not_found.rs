//! The page for any URL the router does not know.

use leptos::prelude::*;

/// Tells the visitor the page does not exist, with a 404 status when the
/// page is rendered on the server.
#[component]
pub fn NotFoundPage() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="card">
            <h1>"Page not found"</h1>
            <p>
                "There is nothing at this address. " <a href="/">"Go to the home page"</a> "."
            </p>
        </section>
    }
}
