//! identity: users, credentials, roles, addresses and refresh tokens.

use chrono::{DateTime, Utc};
use eventshop_core::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation;
use crate::values::{AddressLine, CountryCode, Email, Password, PersonName, Role};

pub const SERVICE: &str = "identity";

/// A user as the API shows it: never the credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub name: PersonName,
    pub role: Role,
    pub addresses: Vec<Address>,
    pub created_at: DateTime<Utc>,
    /// The version of the user's stream, for `ETag`.
    pub version: u64,
}

/// A postal address as entered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub name: PersonName,
    pub line1: AddressLine,
    #[serde(default)]
    pub line2: Option<AddressLine>,
    pub city: AddressLine,
    pub postal_code: AddressLine,
    pub country: CountryCode,
}

/// A stored address of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub id: Uuid,
    #[serde(flatten)]
    pub address: AddressInput,
}

/// Who a token is for: the answer of a successful login or refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Uuid,
    pub email: Email,
    pub role: Role,
    /// A new refresh token; the one it replaces (on refresh) no longer works.
    pub refresh_token: String,
}

/// Registers a user. `user_id` is chosen by the caller (derived from an idempotency key,
/// or new), so a retried registration finds its own first answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterUser {
    pub user_id: Uuid,
    pub email: Email,
    pub password: Password,
    pub name: PersonName,
    pub role: Role,
}
operation!(RegisterUser, SERVICE, User);

/// Checks a password and opens a session. Refused (`Invalid`) for an unknown email and a
/// wrong password alike.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogIn {
    pub email: Email,
    pub password: Password,
}
operation!(LogIn, SERVICE, Session);

/// Exchanges a refresh token for a new one (rotation). A token used twice revokes every
/// session of its user: someone holds a stolen copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshSession {
    pub refresh_token: String,
}
operation!(RefreshSession, SERVICE, Session);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GetUser {
    pub user_id: Uuid,
}
operation!(GetUser, SERVICE, User);

/// Changes what is given; `expected_version` (from `If-Match`) must match if present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeProfile {
    pub user_id: Uuid,
    pub name: Option<PersonName>,
    pub expected_version: Option<u64>,
}
operation!(ChangeProfile, SERVICE, User);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddAddress {
    pub user_id: Uuid,
    /// Chosen by the caller, so a retry adds nothing twice.
    pub address_id: Uuid,
    pub address: AddressInput,
}
operation!(AddAddress, SERVICE, Address);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveAddress {
    pub user_id: Uuid,
    pub address_id: Uuid,
}
operation!(RemoveAddress, SERVICE, User);

/// The events of a user's stream (`user-<id>`), and of the email claims (`email-<hash>`)
/// that keep addresses unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum IdentityEvent {
    UserRegistered {
        user_id: Uuid,
        email: Email,
        name: PersonName,
        role: Role,
        /// argon2id PHC string; the password itself is never stored.
        password_hash: String,
    },
    UserProfileChanged {
        user_id: Uuid,
        name: PersonName,
    },
    AddressAdded {
        user_id: Uuid,
        address: Address,
    },
    AddressRemoved {
        user_id: Uuid,
        address_id: Uuid,
    },
    /// A refresh token was handed out; only its SHA-256 is kept.
    RefreshTokenIssued {
        user_id: Uuid,
        token_id: Uuid,
        token_hash: String,
        expires_at: DateTime<Utc>,
    },
    /// A refresh token was exchanged for a new one and no longer works.
    RefreshTokenUsed {
        user_id: Uuid,
        token_id: Uuid,
    },
    /// Every refresh token of the user was revoked (a used token came back).
    RefreshTokensRevoked {
        user_id: Uuid,
    },
    /// An email address was taken by a user: the first event of its claim stream.
    EmailClaimed {
        email: Email,
        user_id: Uuid,
    },
}

impl DomainEvent for IdentityEvent {}
