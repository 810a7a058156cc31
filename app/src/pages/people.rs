//! `/people`: the newest accounts, for logged-in users. The guide's example
//! of a page with a server function (`docs/guide.md`, "Add a page with a
//! server function").

use leptos::prelude::*;

use crate::{auth::User, error::AppError};

/// How many accounts the page lists.
#[cfg(feature = "ssr")]
const PEOPLE_SHOWN: i64 = 20;

/// The newest accounts, newest first (logged-in users only).
#[server(prefix = "/api", endpoint = "people/newest")]
pub async fn newest_people() -> Result<Vec<User>, AppError> {
    crate::auth::guard::logged_in_user().await?;
    crate::AppContext::expect()?
        .users
        .newest(PEOPLE_SHOWN)
        .await
}

/// Lists the newest accounts, or says why it cannot.
#[component]
pub fn PeoplePage() -> impl IntoView {
    let people = Resource::new(|| (), |()| newest_people());
    view! {
        <section class="card">
            <h1>"People"</h1>
            <p class="muted">"The newest accounts, newest first."</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match people.await {
                        Ok(people) => {
                            view! {
                                <ul class="people" data-testid="people">
                                    {people
                                        .into_iter()
                                        .map(|person| view! { <li>{person.name}</li> })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(error) => {
                            view! { <p class="form-error">{error.to_string()}</p> }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}
