//! The __humans__' server functions. Each needs a logged-in user and acts on
//! that user's __humans__ only; each change is checked, counted against the
//! user's limit, and heard by every tab of theirs.

use leptos::prelude::*;

use super::{__Type__, __Type__Fields, __Type__List, __Type__Opened};
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::limits::Action;

/// The caller's __humans__, newest first.
#[server(prefix = "/api", endpoint = "__plural__/list")]
pub async fn list___plural__() -> Result<__Type__List, AppError> {
    let user = server::logged_in_user().await?;
    let context = crate::AppContext::expect()?;
    // Read before the __humans__: see `__Type__List::position`.
    let position = server::position_of(&context, user.id).await;
    let __plural__ = server::__plural__(&context).list(user.id).await?;
    Ok(__Type__List {
        __plural__,
        owner: user.id,
        position,
    })
}

/// One of the caller's __humans__.
#[server(prefix = "/api", endpoint = "__plural__/open")]
pub async fn open___name__(id: i64) -> Result<__Type__Opened, AppError> {
    let user = server::logged_in_user().await?;
    let context = crate::AppContext::expect()?;
    let position = server::position_of(&context, user.id).await;
    let __name__ = server::__plural__(&context)
        .get(id, user.id)
        .await?
        .ok_or_else(server::no_such___name__)?;
    Ok(__Type__Opened { __name__, position })
}

/// Creates a __human__ for the caller, and tells every tab of theirs.
#[server(prefix = "/api", endpoint = "__plural__/create")]
pub async fn create___name__(fields: __Type__Fields) -> Result<__Type__, AppError> {
    use super::__Type__Created;
    let user = server::acting_user_on_network(Action::__Action__, Action::__Action__PerAddress).await?;
    let fields = fields.check()?;
    let context = crate::AppContext::expect()?;
    let __name__ = server::__plural__(&context).create(user.id, &fields).await?;
    tracing::info!(id = __name__.id, by = %user.id, "__human__ created");
    server::tell_owner(&context, user.id, &__Type__Created(__name__.clone()));
    Ok(__name__)
}

/// Edits one of the caller's __humans__, tells every tab of theirs, and
/// sends the browser back to the list.
#[server(prefix = "/api", endpoint = "__plural__/update")]
pub async fn update___name__(id: i64, fields: __Type__Fields) -> Result<__Type__, AppError> {
    use super::__Type__Updated;
    let user = server::acting_user_on_network(Action::__Action__, Action::__Action__PerAddress).await?;
    let fields = fields.check()?;
    let context = crate::AppContext::expect()?;
    let __name__ = server::__plural__(&context)
        .update(id, user.id, &fields)
        .await?
        .ok_or_else(server::no_such___name__)?;
    tracing::info!(id, by = %user.id, "__human__ updated");
    server::tell_owner(&context, user.id, &__Type__Updated(__name__.clone()));
    leptos_axum::redirect("/__plural__");
    Ok(__name__)
}

/// Deletes one of the caller's __humans__, tells every tab of theirs, and
/// sends the browser back to the list.
#[server(prefix = "/api", endpoint = "__plural__/delete")]
pub async fn delete___name__(id: i64) -> Result<(), AppError> {
    use super::__Type__Deleted;
    let user = server::acting_user_on_network(Action::__Action__, Action::__Action__PerAddress).await?;
    let context = crate::AppContext::expect()?;
    if !server::__plural__(&context).delete(id, user.id).await? {
        return Err(server::no_such___name__());
    }
    tracing::info!(id, by = %user.id, "__human__ deleted");
    server::tell_owner(&context, user.id, &__Type__Deleted { id });
    leptos_axum::redirect("/__plural__");
    Ok(())
}

#[cfg(feature = "ssr")]
mod server {
    use realtime::{Position, UserId};

    pub use crate::auth::guard::{acting_user_on_network, logged_in_user};
    use crate::{AppContext, __plural__::store::__Plural__, error::AppError};

    pub fn __plural__(context: &AppContext) -> __Plural__ {
        __Plural__::new(context.db.clone())
    }

    /// Where `owner`'s stream stands: read before their __humans__, so
    /// that the page hears every change made after the read.
    pub async fn position_of(context: &AppContext, owner: UserId) -> Option<Position> {
        context.events.position(&realtime::Stream::User(owner)).await
    }

    /// Another user's __human__ is answered as one that does not exist: the
    /// answer tells nothing of what others keep.
    pub fn no_such___name__() -> AppError {
        AppError::NotFound("There is no such __human__.".into())
    }

    /// Sends `event` to every tab of `owner`. The change is stored by now:
    /// if the event cannot go (too large for the hub, say), the call still
    /// succeeds, and the owner's other tabs show the change when they next
    /// load the page.
    pub fn tell_owner<E: realtime::Event>(context: &AppContext, owner: UserId, event: &E) {
        if let Err(error) = context.events.to(owner).emit(event) {
            tracing::warn!(%error, event = E::NAME, %owner, "a stored change could not be sent");
        }
    }
}
