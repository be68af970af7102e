//! The `User` aggregate: one stream per user (`user-<id>`) holding the profile, the
//! credentials, the addresses and the refresh tokens handed out.
//!
//! Everything here is pure. Whatever needs a clock, randomness or a slow hash (the time,
//! new token ids and secrets, password hashes) is worked out by the handler and arrives in
//! the command, so every decision can be replayed and tested from events alone.

use chrono::{DateTime, Utc};
use contracts::Role;
use contracts::identity::{Address, IdentityEvent};
use contracts::values::{Email, PersonName};
use eventshop_core::{Aggregate, Version};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How many addresses one user may keep.
pub const MAX_ADDRESSES: usize = 20;

/// How many of the newest refresh tokens a user's state remembers. An older token is
/// forgotten and so refused like an expired one: it keeps the state small however often
/// the user logs in.
pub const REMEMBERED_REFRESH_TOKENS: usize = 50;

/// A registered user, as folded from the user's stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `None` until `UserRegistered`: every other command needs a registered user.
    pub profile: Option<Profile>,
    pub addresses: Vec<Address>,
    /// Oldest first; at most [`REMEMBERED_REFRESH_TOKENS`].
    pub refresh_tokens: Vec<RefreshTokenRecord>,
    /// The number of events applied, which is the stream's version: what an
    /// `expected_version` is checked against inside the decision, so a concurrent change
    /// cannot slip in between the check and the append.
    pub version: Version,
}

/// Who the user is and how they prove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub user_id: Uuid,
    pub email: Email,
    pub name: PersonName,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// A refresh token handed out; the token itself is never kept, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub token_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    /// Exchanged once already: coming back means someone else holds a copy.
    pub used: bool,
}

/// A refresh token about to be handed out, made by the handler (it needs randomness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub token_id: Uuid,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What can be asked of a user.
#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    /// Creates the user. Sent again with the same email it changes nothing.
    Register {
        user_id: Uuid,
        email: Email,
        name: PersonName,
        role: Role,
        password_hash: String,
    },
    /// Changes what is given; `expected_version`, if given, must be the stream's version.
    ChangeProfile {
        name: Option<PersonName>,
        expected_version: Option<Version>,
    },
    /// Adds an address; an address id already stored changes nothing.
    AddAddress {
        address: Address,
    },
    RemoveAddress {
        address_id: Uuid,
    },
    /// Hands out a refresh token after the password was checked.
    IssueRefreshToken {
        token: NewRefreshToken,
    },
    /// Exchanges the presented token (known by its id and hash) for `replacement`.
    UseRefreshToken {
        token_id: Uuid,
        token_hash: String,
        now: DateTime<Utc>,
        replacement: NewRefreshToken,
    },
}

/// Why a user refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("no such user")]
    NotRegistered,
    #[error("this user id is already taken by another account")]
    UserIdTaken,
    #[error("the user is at version {actual}, not {expected}")]
    VersionMismatch { expected: Version, actual: Version },
    #[error("a user may keep at most {MAX_ADDRESSES} addresses")]
    TooManyAddresses,
    #[error("no such address")]
    UnknownAddress,
    /// Never issued, issued with another secret, revoked, or forgotten as too old.
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    #[error("the refresh token has expired")]
    RefreshTokenExpired,
}

impl User {
    pub fn is_registered(&self) -> bool {
        self.profile.is_some()
    }

    pub fn address(&self, address_id: Uuid) -> Option<&Address> {
        self.addresses.iter().find(|address| address.id == address_id)
    }

    fn registered_profile(&self) -> Result<&Profile, UserError> {
        self.profile.as_ref().ok_or(UserError::NotRegistered)
    }

    fn decide_register(
        &self,
        user_id: Uuid,
        email: &Email,
        name: &PersonName,
        role: Role,
        password_hash: &str,
    ) -> Result<Vec<IdentityEvent>, UserError> {
        match &self.profile {
            // The same registration again (a retry): it already happened.
            Some(profile) if profile.email == *email => Ok(vec![]),
            Some(_) => Err(UserError::UserIdTaken),
            None => Ok(vec![IdentityEvent::UserRegistered {
                user_id,
                email: email.clone(),
                name: name.clone(),
                role,
                password_hash: password_hash.to_owned(),
            }]),
        }
    }

    fn decide_change_profile(
        &self,
        name: Option<&PersonName>,
        expected_version: Option<Version>,
    ) -> Result<Vec<IdentityEvent>, UserError> {
        let profile = self.registered_profile()?;
        match expected_version {
            Some(expected) if expected != self.version => {
                return Err(UserError::VersionMismatch { expected, actual: self.version });
            }
            _ => {}
        }
        match name {
            Some(name) if *name != profile.name => {
                Ok(vec![IdentityEvent::UserProfileChanged { user_id: profile.user_id, name: name.clone() }])
            }
            _ => Ok(vec![]),
        }
    }

    fn decide_add_address(&self, address: &Address) -> Result<Vec<IdentityEvent>, UserError> {
        let profile = self.registered_profile()?;
        if self.address(address.id).is_some() {
            return Ok(vec![]);
        }
        if self.addresses.len() >= MAX_ADDRESSES {
            return Err(UserError::TooManyAddresses);
        }
        Ok(vec![IdentityEvent::AddressAdded { user_id: profile.user_id, address: address.clone() }])
    }

    fn decide_remove_address(&self, address_id: Uuid) -> Result<Vec<IdentityEvent>, UserError> {
        let profile = self.registered_profile()?;
        if self.address(address_id).is_none() {
            return Err(UserError::UnknownAddress);
        }
        Ok(vec![IdentityEvent::AddressRemoved { user_id: profile.user_id, address_id }])
    }

    fn decide_use_refresh_token(
        &self,
        token_id: Uuid,
        token_hash: &str,
        now: DateTime<Utc>,
        replacement: &NewRefreshToken,
    ) -> Result<Vec<IdentityEvent>, UserError> {
        let profile = self.registered_profile()?;
        let record = self
            .refresh_tokens
            .iter()
            .find(|record| record.token_id == token_id && crate::tokens::hashes_match(&record.token_hash, token_hash))
            .ok_or(UserError::UnknownRefreshToken)?;
        if record.used {
            // Reuse: the token was stolen, or its holder was. Nobody's copy works any more;
            // the handler refuses the request after recording this.
            return Ok(vec![IdentityEvent::RefreshTokensRevoked { user_id: profile.user_id }]);
        }
        if record.expires_at <= now {
            return Err(UserError::RefreshTokenExpired);
        }
        Ok(vec![
            IdentityEvent::RefreshTokenUsed { user_id: profile.user_id, token_id },
            issued(profile.user_id, replacement),
        ])
    }
}

fn issued(user_id: Uuid, token: &NewRefreshToken) -> IdentityEvent {
    IdentityEvent::RefreshTokenIssued {
        user_id,
        token_id: token.token_id,
        token_hash: token.token_hash.clone(),
        expires_at: token.expires_at,
    }
}

impl Aggregate for User {
    const CATEGORY: &'static str = "user";

    type Command = UserCommand;
    type Event = IdentityEvent;
    type Error = UserError;

    fn decide(&self, command: &UserCommand) -> Result<Vec<IdentityEvent>, UserError> {
        match command {
            UserCommand::Register { user_id, email, name, role, password_hash } => {
                self.decide_register(*user_id, email, name, *role, password_hash)
            }
            UserCommand::ChangeProfile { name, expected_version } => {
                self.decide_change_profile(name.as_ref(), *expected_version)
            }
            UserCommand::AddAddress { address } => self.decide_add_address(address),
            UserCommand::RemoveAddress { address_id } => self.decide_remove_address(*address_id),
            UserCommand::IssueRefreshToken { token } => {
                let profile = self.registered_profile()?;
                Ok(vec![issued(profile.user_id, token)])
            }
            UserCommand::UseRefreshToken { token_id, token_hash, now, replacement } => {
                self.decide_use_refresh_token(*token_id, token_hash, *now, replacement)
            }
        }
    }

    fn apply(mut self, event: &IdentityEvent) -> Self {
        self.version += 1;
        match event {
            IdentityEvent::UserRegistered { user_id, email, name, role, password_hash } => {
                self.profile = Some(Profile {
                    user_id: *user_id,
                    email: email.clone(),
                    name: name.clone(),
                    role: *role,
                    password_hash: password_hash.clone(),
                });
            }
            IdentityEvent::UserProfileChanged { name, .. } => {
                if let Some(profile) = &mut self.profile {
                    profile.name = name.clone();
                }
            }
            IdentityEvent::AddressAdded { address, .. } => self.addresses.push(address.clone()),
            IdentityEvent::AddressRemoved { address_id, .. } => {
                self.addresses.retain(|address| address.id != *address_id);
            }
            IdentityEvent::RefreshTokenIssued { token_id, token_hash, expires_at, .. } => {
                self.refresh_tokens.push(RefreshTokenRecord {
                    token_id: *token_id,
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                    used: false,
                });
                let excess = self.refresh_tokens.len().saturating_sub(REMEMBERED_REFRESH_TOKENS);
                self.refresh_tokens.drain(..excess);
            }
            IdentityEvent::RefreshTokenUsed { token_id, .. } => {
                if let Some(record) = self.refresh_tokens.iter_mut().find(|record| record.token_id == *token_id) {
                    record.used = true;
                }
            }
            // A revoked token is simply forgotten: unknown tokens are refused.
            IdentityEvent::RefreshTokensRevoked { .. } => self.refresh_tokens.clear(),
            // Claims live in their own streams, never in a user's.
            IdentityEvent::EmailClaimed { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use contracts::identity::AddressInput;
    use eventshop_core::testing::AggregateTest;

    use super::*;

    fn user_id() -> Uuid {
        Uuid::from_u128(1)
    }

    fn email(text: &str) -> Email {
        Email::try_from(text.to_owned()).expect("valid email")
    }

    fn name(text: &str) -> PersonName {
        PersonName::try_from(text.to_owned()).expect("valid name")
    }

    fn registered() -> IdentityEvent {
        IdentityEvent::UserRegistered {
            user_id: user_id(),
            email: email("ann@example.com"),
            name: name("Ann"),
            role: Role::Customer,
            password_hash: "$argon2id$hash".into(),
        }
    }

    fn register(email_text: &str) -> UserCommand {
        UserCommand::Register {
            user_id: user_id(),
            email: email(email_text),
            name: name("Ann"),
            role: Role::Customer,
            password_hash: "$argon2id$hash".into(),
        }
    }

    fn address(id: u128) -> Address {
        let line = |text: &str| text.to_owned().try_into().expect("valid address line");
        Address {
            id: Uuid::from_u128(id),
            address: AddressInput {
                name: name("Ann"),
                line1: line("1 Main Street"),
                line2: None,
                city: line("Berlin"),
                postal_code: line("10115"),
                country: "DE".to_owned().try_into().expect("valid country"),
            },
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid time")
    }

    fn new_token(id: u128, hash: &str) -> NewRefreshToken {
        NewRefreshToken {
            token_id: Uuid::from_u128(id),
            token_hash: hash.into(),
            expires_at: now() + TimeDelta::days(30),
        }
    }

    fn token_issued(id: u128, hash: &str) -> IdentityEvent {
        issued(user_id(), &new_token(id, hash))
    }

    fn use_token(id: u128, hash: &str, replacement: NewRefreshToken) -> UserCommand {
        UserCommand::UseRefreshToken { token_id: Uuid::from_u128(id), token_hash: hash.into(), now: now(), replacement }
    }

    #[test]
    fn registering_records_the_user() {
        AggregateTest::<User>::given_no_history()
            .when(register("ann@example.com"))
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn registering_again_with_the_same_email_changes_nothing() {
        AggregateTest::<User>::given([registered()]).when(register("ann@example.com")).then_expect_events(vec![]);
    }

    #[test]
    fn registering_a_taken_user_id_with_another_email_is_refused() {
        AggregateTest::<User>::given([registered()])
            .when(register("bob@example.com"))
            .then_expect_error(UserError::UserIdTaken);
    }

    #[test]
    fn an_unregistered_user_cannot_be_changed() {
        AggregateTest::<User>::given_no_history()
            .when(UserCommand::ChangeProfile { name: Some(name("Bob")), expected_version: None })
            .then_expect_error(UserError::NotRegistered);
    }

    #[test]
    fn changing_the_name_records_it() {
        let state = AggregateTest::<User>::given([registered()])
            .when(UserCommand::ChangeProfile { name: Some(name("Annie")), expected_version: Some(1) })
            .then_state();
        assert_eq!(state.profile.map(|profile| profile.name), Some(name("Annie")));
        assert_eq!(state.version, 2);
    }

    #[test]
    fn changing_nothing_records_nothing() {
        AggregateTest::<User>::given([registered()])
            .when(UserCommand::ChangeProfile { name: Some(name("Ann")), expected_version: None })
            .then_expect_events(vec![]);
        AggregateTest::<User>::given([registered()])
            .when(UserCommand::ChangeProfile { name: None, expected_version: None })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_stale_expected_version_is_refused() {
        AggregateTest::<User>::given([registered(), token_issued(7, "h7")])
            .when(UserCommand::ChangeProfile { name: Some(name("Annie")), expected_version: Some(1) })
            .then_expect_error(UserError::VersionMismatch { expected: 1, actual: 2 });
    }

    #[test]
    fn adding_an_address_twice_records_it_once() {
        AggregateTest::<User>::given([registered()])
            .when(UserCommand::AddAddress { address: address(5) })
            .then_expect_events(vec![IdentityEvent::AddressAdded { user_id: user_id(), address: address(5) }]);
        AggregateTest::<User>::given([
            registered(),
            IdentityEvent::AddressAdded { user_id: user_id(), address: address(5) },
        ])
        .when(UserCommand::AddAddress { address: address(5) })
        .then_expect_events(vec![]);
    }

    #[test]
    fn a_user_keeps_at_most_twenty_addresses() {
        let mut history = vec![registered()];
        history.extend(
            (0..MAX_ADDRESSES as u128)
                .map(|id| IdentityEvent::AddressAdded { user_id: user_id(), address: address(100 + id) }),
        );
        AggregateTest::<User>::given(history)
            .when(UserCommand::AddAddress { address: address(5) })
            .then_expect_error(UserError::TooManyAddresses);
    }

    #[test]
    fn removing_an_address_records_it_and_an_unknown_one_is_refused() {
        let history = || vec![registered(), IdentityEvent::AddressAdded { user_id: user_id(), address: address(5) }];
        AggregateTest::<User>::given(history())
            .when(UserCommand::RemoveAddress { address_id: Uuid::from_u128(5) })
            .then_expect_events(vec![IdentityEvent::AddressRemoved {
                user_id: user_id(),
                address_id: Uuid::from_u128(5),
            }]);
        AggregateTest::<User>::given(history())
            .when(UserCommand::RemoveAddress { address_id: Uuid::from_u128(6) })
            .then_expect_error(UserError::UnknownAddress);
    }

    #[test]
    fn a_login_issues_a_refresh_token() {
        AggregateTest::<User>::given([registered()])
            .when(UserCommand::IssueRefreshToken { token: new_token(7, "h7") })
            .then_expect_events(vec![token_issued(7, "h7")]);
        AggregateTest::<User>::given_no_history()
            .when(UserCommand::IssueRefreshToken { token: new_token(7, "h7") })
            .then_expect_error(UserError::NotRegistered);
    }

    #[test]
    fn a_fresh_refresh_token_is_exchanged_for_a_new_one() {
        AggregateTest::<User>::given([registered(), token_issued(7, "h7")])
            .when(use_token(7, "h7", new_token(8, "h8")))
            .then_expect_events(vec![
                IdentityEvent::RefreshTokenUsed { user_id: user_id(), token_id: Uuid::from_u128(7) },
                token_issued(8, "h8"),
            ]);
    }

    #[test]
    fn a_used_refresh_token_coming_back_revokes_them_all() {
        let history = vec![
            registered(),
            token_issued(7, "h7"),
            IdentityEvent::RefreshTokenUsed { user_id: user_id(), token_id: Uuid::from_u128(7) },
            token_issued(8, "h8"),
        ];
        let state =
            AggregateTest::<User>::given(history.clone()).when(use_token(7, "h7", new_token(9, "h9"))).then_state();
        assert!(state.refresh_tokens.is_empty(), "the replacement token 8 must stop working too");

        let mut revoked = history;
        revoked.push(IdentityEvent::RefreshTokensRevoked { user_id: user_id() });
        AggregateTest::<User>::given(revoked)
            .when(use_token(8, "h8", new_token(9, "h9")))
            .then_expect_error(UserError::UnknownRefreshToken);
    }

    #[test]
    fn an_expired_or_unknown_refresh_token_is_refused() {
        let expired = IdentityEvent::RefreshTokenIssued {
            user_id: user_id(),
            token_id: Uuid::from_u128(7),
            token_hash: "h7".into(),
            expires_at: now() - TimeDelta::seconds(1),
        };
        AggregateTest::<User>::given([registered(), expired.clone()])
            .when(use_token(7, "h7", new_token(8, "h8")))
            .then_expect_error(UserError::RefreshTokenExpired);
        AggregateTest::<User>::given([registered(), expired])
            .when(use_token(7, "wrong secret", new_token(8, "h8")))
            .then_expect_error(UserError::UnknownRefreshToken);
    }

    #[test]
    fn only_the_newest_refresh_tokens_are_remembered() {
        let mut history = vec![registered()];
        history.extend((0..=REMEMBERED_REFRESH_TOKENS as u128).map(|id| token_issued(id, &format!("h{id}"))));
        AggregateTest::<User>::given(history.clone())
            .when(use_token(0, "h0", new_token(900, "h900")))
            .then_expect_error(UserError::UnknownRefreshToken);
        let state = AggregateTest::<User>::given(history).when(use_token(1, "h1", new_token(900, "h900"))).then_state();
        assert_eq!(state.refresh_tokens.len(), REMEMBERED_REFRESH_TOKENS);
    }
}
