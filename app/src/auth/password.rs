//! Password hashing with Argon2id (the `argon2` crate's defaults, which
//! follow the OWASP recommendation).
//!
//! Hashing takes tens of milliseconds of CPU on purpose, so it runs on
//! tokio's blocking pool instead of stalling the async workers.

use std::sync::LazyLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

use crate::error::AppError;

/// Hashes `password` with a fresh random salt, in PHC string format
/// (`$argon2id$v=19$m=…`), which records the parameters beside the hash.
pub async fn hash(password: String) -> Result<String, AppError> {
    run_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| {
                tracing::error!(%error, "hashing a password failed");
                AppError::Internal
            })
    })
    .await
}

/// Whether `password` matches the stored PHC string `hash`.
///
/// With `hash: None` (no such user) it still spends the time of one
/// verification against a throw-away hash, so the response time does not
/// tell an attacker whether the name exists.
pub async fn verify(password: String, hash: Option<String>) -> Result<bool, AppError> {
    run_blocking(move || {
        let known_user = hash.is_some();
        let hash = hash.as_deref().unwrap_or(&DECOY_HASH);
        let parsed = PasswordHash::new(hash).map_err(|error| {
            tracing::error!(%error, "a stored password hash is malformed");
            AppError::Internal
        })?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known_user && matches)
    })
    .await
}

/// A hash of a random password nobody knows, made once per process.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    let password = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_str().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        // Hashing only fails for out-of-range parameters, and these are the
        // crate's defaults.
        .unwrap_or_default()
});

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(%error, "a password hashing task failed");
        AppError::Internal
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn the_same_password_gets_a_different_salt_each_time() {
        let first = hash("same password".into()).await.unwrap();
        let second = hash("same password".into()).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        assert!(!verify("anything".into(), None).await.unwrap());
    }
}
