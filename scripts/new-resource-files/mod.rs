//! __Humans__: records each user keeps, to create, list, edit and delete,
//! live on every tab of theirs.
//!
//! Written by `__command__`; make it yours.
//!
//! - A __human__ belongs to the user who made it: only they see it, change
//!   it or delete it. To anyone else it does not exist (404).
//! - Each change is an event ([`__Type__Created`], [`__Type__Updated`],
//!   [`__Type__Deleted`]) on its owner's stream ([`realtime::Stream::User`]):
//!   every tab of theirs hears it, and nobody else's.
//! - Of two edits of one __human__, the last saved wins: its `version`
//!   orders the copies tabs hear, and is there for a check on save should
//!   you need one.
//! - Each field is checked on the server ([`__Type__Fields::check`]), each
//!   change counts against the owner's limit (`Action::__Action__`,
//!   `__VARIABLE__`) and their network's (`__VARIABLE___PER_ADDRESS`),
//!   and a user keeps at most [`MAX___PLURAL___PER_USER`].
//!
//! The server functions are in [`api`], the queries in [`store`] (server
//! only), the pages in `crate::pages::__plural__`; the tables are in
//! `migrations/`, the tests in `server/tests/__plural__.rs` and
//! `end2end/tests/__plural__.spec.ts`.

pub mod api;
#[cfg(feature = "ssr")]
pub mod store;

use realtime::{Event, Position, UserId};
use serde::{Deserialize, Serialize};

@@CRATE_IMPORTS@@

/// The most __humans__ one user may keep: what bounds a list's size.
pub const MAX___PLURAL___PER_USER: i64 = 500;

@@RULES@@

/// A __human__, as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__ {
    /// Never used again, even once it is deleted.
    pub id: i64,
    pub owner: UserId,
    /// 1 when created, one more at each edit: of two copies, the higher is
    /// the newer.
    pub version: i64,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    @@RECORD_FIELDS@@
}

impl Versioned for __Type__ {
    fn id(&self) -> i64 {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }
}

/// What the forms send to create or edit a __human__: its form fields are
/// named `fields[<field>]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__Fields {
    @@INPUT_FIELDS@@
}

impl __Type__Fields {
    /// The fields as they are stored (text trimmed), if each follows its
    /// rule; otherwise why not, for the person at the keyboard.
    pub fn check(self) -> Result<Self, AppError> {
        Ok(Self {
            @@CHECKS@@
        })
    }

    /// The fields of `__name__`, as its edit form sends them back.
    pub fn of(__name__: &__Type__) -> Self {
        Self {
            @@FIELDS_OF@@
        }
    }
}

/// The caller's __humans__, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__List {
    pub __plural__: Vec<__Type__>,
    /// Whose they are: the page listens to their stream.
    pub owner: UserId,
    /// Where the owner's stream stood just before the __humans__ were
    /// read: the page hears what changed from there on, so a change made
    /// in between is shown, never lost.
    pub position: Option<Position>,
}

/// One __human__, to edit, and where its owner's stream stood just before
/// it was read (as in [`__Type__List`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__Opened {
    pub __name__: __Type__,
    pub position: Option<Position>,
}

/// A __human__ was created (sent to every tab of its owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__Created(pub __Type__);

impl Event for __Type__Created {
    const NAME: &'static str = "__name__.created";
}

/// A __human__ was edited (sent to every tab of its owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__Updated(pub __Type__);

impl Event for __Type__Updated {
    const NAME: &'static str = "__name__.updated";
}

/// A __human__ was deleted (sent to every tab of its owner).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct __Type__Deleted {
    pub id: i64,
}

impl Event for __Type__Deleted {
    const NAME: &'static str = "__name__.deleted";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> __Type__Fields {
        __Type__Fields {
            @@VALID_FIELDS@@
        }
    }

    #[test]
    fn fields_are_trimmed_and_held_to_their_rules() {
        let mut padded = valid();
        padded.__first__ = format!("  {}  ", valid().__first__);
        assert_eq!(padded.check(), Ok(valid()));
        @@RULE_TESTS@@
    }
}
