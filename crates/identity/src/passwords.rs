//! Password hashing with argon2id (the `argon2` crate's default parameters: 19 MiB, two
//! passes, one lane, as OWASP recommends).
//!
//! Hashing is deliberately slow, so it runs on tokio's blocking pool, never on a task that
//! other requests share a worker with.

use argon2::Argon2;
use argon2::password_hash::{self, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use contracts::values::Password;
use rand::RngCore;

/// A hash of a password nobody knows, made with the default parameters. A login for an
/// unknown email is checked against it, so that it takes as long as one for a known email
/// and its timing does not tell which addresses have accounts.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$rtY3upk/tNDnLJkIcC9oMw$MgXyvyVYmfQacxklUouZrTuma0LggeBZ9EuwQwxvJI0";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("cannot hash or check a password: {0}")]
    Hash(#[from] password_hash::Error),
    #[error("the password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The argon2id PHC string of `password`, with a fresh random salt.
pub async fn hash_password(password: Password) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0_u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt)?;
        let hash = Argon2::default().hash_password(password.expose().as_bytes(), &salt)?;
        Ok(hash.to_string())
    })
    .await?
}

/// Whether `password` is the one `hash` was made from. The parameters are read from the
/// hash, so hashes made with older parameters keep working.
pub async fn verify_password(password: Password, hash: String) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)?;
        match Argon2::default().verify_password(password.expose().as_bytes(), &parsed) {
            Ok(()) => Ok(true),
            Err(password_hash::Error::Password) => Ok(false),
            Err(error) => Err(error.into()),
        }
    })
    .await?
}

/// Spends the time of one password check, for a login whose email has no account.
pub async fn spend_one_verification(password: Password) -> Result<(), PasswordError> {
    verify_password(password, DUMMY_HASH.to_owned()).await.map(|_matches| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::try_from(text.to_owned()).expect("valid password")
    }

    #[tokio::test]
    async fn a_hash_verifies_its_own_password_only() {
        let hash = hash_password(password("correct horse")).await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password(password("correct horse"), hash.clone()).await.expect("checks"));
        assert!(!verify_password(password("battery staple"), hash).await.expect("checks"));
    }

    #[tokio::test]
    async fn the_same_password_gets_a_different_salt_each_time() {
        let first = hash_password(password("correct horse")).await.expect("hashes");
        let second = hash_password(password("correct horse")).await.expect("hashes");
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn the_dummy_hash_costs_what_a_real_one_does() {
        let real = hash_password(password("correct horse")).await.expect("hashes");
        let parameters = |hash: &str| hash.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(parameters(DUMMY_HASH), parameters(&real));
        spend_one_verification(password("correct horse")).await.expect("the dummy hash parses");
    }

    #[tokio::test]
    async fn a_corrupt_hash_is_an_error_not_a_mismatch() {
        assert!(verify_password(password("correct horse"), "not a hash".into()).await.is_err());
    }
}
