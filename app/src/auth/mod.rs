//! Identity: who the visitor is.
//!
//! The types at the top are shared by the server and the browser: the
//! [`User`] a page shows, the [`AuthError`] a form shows, and the rules a
//! user name and a password must follow. The server functions that sign up,
//! log in, log out and read the current user are in [`api`]; the state the
//! pages share (those actions, and the current user) is [`Auth`]. What only
//! the server does is in the `ssr`-only modules: [`session`] turns a
//! session into its user (for server functions and the WebSocket alike),
//! [`guard`] does it for the current server-function call, [`password`]
//! hashes, [`store`] queries the `users` table.

pub mod api;
#[cfg(feature = "ssr")]
pub mod guard;
#[cfg(feature = "ssr")]
pub mod password;
#[cfg(feature = "ssr")]
pub mod session;
mod state;
#[cfg(feature = "ssr")]
pub mod store;

pub use state::{Auth, provide_auth, use_auth};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::input::{TextProblem, bounded};

/// The longest user name we accept, in characters.
pub const MAX_USER_NAME_LEN: usize = 32;
/// The shortest password we accept, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password we accept, in characters. Hashing is deliberately
/// slow; an unbounded input would let one request burn a core.
pub const MAX_PASSWORD_LEN: usize = 128;

/// A user's id: the primary key of the `users` table. The real-time layer
/// uses the same type to send events to users.
pub use realtime::UserId;

/// A user as the pages see it: never the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    /// When the account was created, in seconds since the Unix epoch.
    pub created_at: i64,
}

/// What can go wrong with an account: signing up, logging in, or a session
/// that ended. Server functions return it inside
/// [`crate::error::AppError`], with the failures every action shares
/// (internal, database unavailable, server unreachable).
///
/// Each variant's message is written for the person at the keyboard; the
/// pages show it as it is.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthError {
    #[error("Please choose a user name.")]
    EmptyUserName,
    #[error("User names can be at most {max} characters long.")]
    UserNameTooLong { max: usize },
    #[error("User names may only contain letters, digits, '.', '-' and '_'.")]
    UserNameInvalid,
    #[error("Passwords need at least {min} characters.")]
    PasswordTooShort { min: usize },
    #[error("Passwords can be at most {max} characters long.")]
    PasswordTooLong { max: usize },
    #[error(
        "That password is one of the most common ones, which attackers try first. Please choose another."
    )]
    PasswordTooCommon,
    /// The name is not repeated in the message: a link to a form's error
    /// (without JavaScript) could otherwise put words in the site's alert.
    #[error("That user name is already taken.")]
    NameTaken { name: String },
    /// Deliberately the same for an unknown name and a wrong password, so
    /// the form does not reveal which names exist.
    #[error("Wrong user name or password.")]
    WrongCredentials,
    #[error("Your session has expired or is no longer valid. Please log in again.")]
    SessionExpired,
}

impl AuthError {
    /// The HTTP status a server function answers with when it fails this way.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::EmptyUserName
            | Self::UserNameTooLong { .. }
            | Self::UserNameInvalid
            | Self::PasswordTooShort { .. }
            | Self::PasswordTooLong { .. }
            | Self::PasswordTooCommon => 400,
            Self::WrongCredentials | Self::SessionExpired => 401,
            Self::NameTaken { .. } => 409,
        }
    }
}

/// A user name that follows the rules: 1 to [`MAX_USER_NAME_LEN`] ASCII
/// letters, digits, `.`, `-` or `_`, with surrounding spaces removed.
///
/// Names are unique without regard to case: "Ada" and "ada" are the same
/// account name, and the first spelling is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, AuthError> {
        let name = bounded(raw, MAX_USER_NAME_LEN).map_err(|problem| match problem {
            TextProblem::Empty => AuthError::EmptyUserName,
            TextProblem::TooLong => AuthError::UserNameTooLong {
                max: MAX_USER_NAME_LEN,
            },
        })?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if !name.chars().all(allowed) {
            return Err(AuthError::UserNameInvalid);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that follows the length rules. Only sign-up checks them:
/// logging in with a password that breaks them is simply a wrong password.
pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        Err(AuthError::PasswordTooShort {
            min: MIN_PASSWORD_LEN,
        })
    } else if len > MAX_PASSWORD_LEN {
        Err(AuthError::PasswordTooLong {
            max: MAX_PASSWORD_LEN,
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_trimmed() {
        assert_eq!(UserName::parse("  ada  ").unwrap().as_str(), "ada");
    }

    #[test]
    fn empty_and_blank_user_names_are_refused() {
        assert_eq!(UserName::parse(""), Err(AuthError::EmptyUserName));
        assert_eq!(UserName::parse(" \t "), Err(AuthError::EmptyUserName));
    }

    #[test]
    fn user_names_have_a_maximum_length() {
        let longest = "a".repeat(MAX_USER_NAME_LEN);
        assert!(UserName::parse(&longest).is_ok());
        assert_eq!(
            UserName::parse(&format!("{longest}a")),
            Err(AuthError::UserNameTooLong {
                max: MAX_USER_NAME_LEN
            })
        );
    }

    #[test]
    fn user_names_only_use_safe_characters() {
        assert!(UserName::parse("ada.lovelace-1_0").is_ok());
        for bad in ["ada lovelace", "<script>", "ädа", "a/b"] {
            assert_eq!(
                UserName::parse(bad),
                Err(AuthError::UserNameInvalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn new_passwords_have_length_limits() {
        let shortest = "p".repeat(MIN_PASSWORD_LEN);
        assert_eq!(check_new_password(&shortest), Ok(()));
        assert_eq!(
            check_new_password(&shortest[1..]),
            Err(AuthError::PasswordTooShort {
                min: MIN_PASSWORD_LEN
            })
        );
        let longest = "p".repeat(MAX_PASSWORD_LEN);
        assert_eq!(check_new_password(&longest), Ok(()));
        assert_eq!(
            check_new_password(&format!("{longest}p")),
            Err(AuthError::PasswordTooLong {
                max: MAX_PASSWORD_LEN
            })
        );
    }
}
