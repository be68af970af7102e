//! Refresh tokens: how they are made, read back and compared.
//!
//! A token is `<user_id>.<token_id>.<secret>`, the secret being 32 random bytes in
//! base64url without padding. The user id in front lets a refresh find its stream without
//! an index; the token id finds the record in it. Only the SHA-256 of the whole token is
//! stored, so a copy of the event store opens no session. A hash suffices (no salt, no slow
//! hash): the secret has 256 bits of entropy, nothing to guess.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::NewRefreshToken;

/// How long a refresh token works if it is not exchanged first.
pub fn refresh_token_lifetime() -> TimeDelta {
    TimeDelta::days(30)
}

const SECRET_BYTES: usize = 32;

/// A new refresh token: the string handed to the client once, and what is recorded of it.
pub struct IssuedRefreshToken {
    /// The token itself; never stored or logged.
    pub token: String,
    pub record: NewRefreshToken,
}

impl fmt::Debug for IssuedRefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedRefreshToken").field("token", &"<redacted>").field("record", &self.record).finish()
    }
}

/// Makes a new refresh token for `user_id`, working until 30 days after `now`.
pub fn issue(user_id: Uuid, now: DateTime<Utc>) -> IssuedRefreshToken {
    let mut secret = [0_u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token_id = Uuid::new_v4();
    let token = format!("{user_id}.{token_id}.{}", URL_SAFE_NO_PAD.encode(secret));
    let record = NewRefreshToken { token_id, token_hash: hash(&token), expires_at: now + refresh_token_lifetime() };
    IssuedRefreshToken { token, record }
}

/// A refresh token as presented by a client, parsed: whose it is, which one, and the hash
/// to compare with the recorded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedRefreshToken {
    pub user_id: Uuid,
    pub token_id: Uuid,
    pub token_hash: String,
}

/// The presented string is not a refresh token this service could have issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a refresh token: {0}")]
pub struct MalformedRefreshToken(&'static str);

/// Reads a presented token. Refuses anything not shaped like an issued one, so that only
/// plausible tokens cost a stream read.
pub fn parse(token: &str) -> Result<PresentedRefreshToken, MalformedRefreshToken> {
    let mut parts = token.split('.');
    let (Some(user_id), Some(token_id), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MalformedRefreshToken("expected three parts separated by '.'"));
    };
    let user_id = Uuid::parse_str(user_id).map_err(|_| MalformedRefreshToken("the user id is not a UUID"))?;
    let token_id = Uuid::parse_str(token_id).map_err(|_| MalformedRefreshToken("the token id is not a UUID"))?;
    let secret = URL_SAFE_NO_PAD.decode(secret).map_err(|_| MalformedRefreshToken("the secret is not base64url"))?;
    if secret.len() != SECRET_BYTES {
        return Err(MalformedRefreshToken("the secret has the wrong length"));
    }
    Ok(PresentedRefreshToken { user_id, token_id, token_hash: hash(token) })
}

/// The SHA-256 of a whole token, base64url without padding: what is stored.
pub fn hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Compares two token hashes in time that does not depend on where they differ.
pub fn hashes_match(recorded: &str, presented: &str) -> bool {
    let (recorded, presented) = (recorded.as_bytes(), presented.as_bytes());
    recorded.len() == presented.len()
        && recorded.iter().zip(presented).fold(0_u8, |difference, (left, right)| difference | (left ^ right)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_parses_back_to_its_record() {
        let user_id = Uuid::from_u128(42);
        let now = Utc::now();
        let issued = issue(user_id, now);
        let presented = parse(&issued.token).expect("an issued token parses");
        assert_eq!(presented.user_id, user_id);
        assert_eq!(presented.token_id, issued.record.token_id);
        assert!(hashes_match(&issued.record.token_hash, &presented.token_hash));
        assert_eq!(issued.record.expires_at, now + TimeDelta::days(30));
        assert!(!issued.record.token_hash.contains(&issued.token), "only the hash is recorded");
        assert!(!format!("{issued:?}").contains(&issued.token), "the token never shows in Debug");
    }

    #[test]
    fn two_tokens_are_never_alike() {
        let now = Utc::now();
        let (first, second) = (issue(Uuid::nil(), now), issue(Uuid::nil(), now));
        assert_ne!(first.token, second.token);
        assert!(!hashes_match(&first.record.token_hash, &second.record.token_hash));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = issue(Uuid::from_u128(1), Utc::now()).token;
        let (user_and_id, secret) = good.rsplit_once('.').expect("three parts");
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("{good}.extra"),
            format!("not-a-uuid.{}.{secret}", Uuid::nil()),
            format!("{user_and_id}.{}", &secret[1..]),
            format!("{user_and_id}.{secret}!"),
        ] {
            assert!(parse(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hashes_differ_in_any_byte_or_length() {
        assert!(hashes_match("abc", "abc"));
        assert!(!hashes_match("abc", "abd"));
        assert!(!hashes_match("abc", "ab"));
    }
}
