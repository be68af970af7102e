//! The identity operations: each request of `contracts::identity` turned into a load or a
//! command of the [`User`] aggregate, and its outcome into a reply or a [`Rejection`].
//!
//! What the pure domain cannot do is done here: hashing and checking passwords, making
//! refresh tokens, reading the clock, and registration, the one command that spans two
//! streams (the user's and the claim on the email address).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use contracts::identity::{
    self as api, AddAddress, ChangeProfile, GetUser, IdentityEvent, LogIn, RefreshSession, RegisterUser, RemoveAddress,
    Session,
};
use contracts::values::Email;
use eventshop_core::bus::{MessageContext, Rejection, RejectionKind};
use eventshop_core::{
    Aggregate, CommandHandler, EventCodec, EventStore, ExpectedVersion, Loaded, StreamAppend, StreamId,
};
use runtime::{command_rejection, internal};
use serde_json::json;
use uuid::Uuid;

use crate::domain::{User, UserCommand, UserError};
use crate::passwords;
use crate::tokens;

/// How often a registration is tried again after losing a race to another writer. A race
/// is settled by the next attempt, which finds the winner's streams; more is a bug.
const REGISTRATION_ATTEMPTS: u32 = 3;

/// How many registration times are kept in memory; when full the cache starts over.
const CREATED_AT_CACHE_CAPACITY: usize = 10_000;

/// The stream that claims `email` for one user: its first event, `EmailClaimed`, names
/// the owner, and appending it with "no stream" is what makes an address unique.
pub fn email_claim_stream(email: &Email) -> StreamId {
    StreamId::new("email", Uuid::new_v5(&Uuid::NAMESPACE_OID, email.as_str().as_bytes()))
}

/// The identity service's state shared by its operations.
#[derive(Debug)]
pub struct Identity {
    store: Arc<dyn EventStore>,
    users: CommandHandler<User>,
    codec: EventCodec<IdentityEvent>,
    /// When each user registered: the `recorded_at` of their first event, which the typed
    /// state cannot know. It never changes, so a cached value is never stale.
    created_at: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

/// Something that should not be in the store was found there.
#[derive(Debug, thiserror::Error)]
enum StoredStateError {
    #[error("stream {0} does not start with EmailClaimed")]
    UnexpectedClaimEvent(StreamId),
    #[error("stream {0} holds a registered user but no events")]
    EmptyUserStream(StreamId),
}

impl Identity {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Identity {
            users: CommandHandler::new(store.clone()),
            store,
            codec: EventCodec::new(),
            created_at: Mutex::new(HashMap::new()),
        }
    }

    #[tracing::instrument(skip_all, fields(user_id = %command.user_id))]
    pub async fn register_user(
        self: Arc<Self>,
        command: RegisterUser,
        context: MessageContext,
    ) -> Result<api::User, Rejection> {
        let user_stream = CommandHandler::<User>::stream_id(command.user_id);
        let claim_stream = email_claim_stream(&command.email);
        // Hashed at most once, and only when the user does not exist yet: a retried
        // registration answers without the cost.
        let mut password_hash: Option<String> = None;
        for _attempt in 0..REGISTRATION_ATTEMPTS {
            let loaded =
                self.users.load(command.user_id).await.map_err(|error| command_rejection(error, user_rejection))?;
            if !loaded.state.is_registered() {
                if let Some(owner) = self.email_owner(&command.email).await? {
                    tracing::debug!(%owner, "email already claimed");
                    return Err(email_taken());
                }
                if password_hash.is_none() {
                    password_hash = Some(passwords::hash_password(command.password.clone()).await.map_err(internal)?);
                }
            }
            let register = UserCommand::Register {
                user_id: command.user_id,
                email: command.email.clone(),
                name: command.name.clone(),
                role: command.role,
                // Not looked at when the user exists: that decision needs no hash.
                password_hash: password_hash.clone().unwrap_or_default(),
            };
            let events = loaded.state.decide(&register).map_err(user_rejection)?;
            if events.is_empty() {
                return self.user_reply(command.user_id, &loaded).await;
            }
            let claim = IdentityEvent::EmailClaimed { email: command.email.clone(), user_id: command.user_id };
            let metadata = context.event_metadata();
            let encode = |events: &[IdentityEvent]| {
                events.iter().map(|event| self.codec.encode(event, metadata)).collect::<Result<Vec<_>, _>>()
            };
            let appends = vec![
                StreamAppend {
                    stream_id: user_stream.clone(),
                    expected: ExpectedVersion::NoStream,
                    events: encode(&events).map_err(internal)?,
                },
                StreamAppend {
                    stream_id: claim_stream.clone(),
                    expected: ExpectedVersion::NoStream,
                    events: encode(&[claim]).map_err(internal)?,
                },
            ];
            match self.store.append_many(appends).await {
                Ok(_) => {
                    let loaded = self
                        .users
                        .load(command.user_id)
                        .await
                        .map_err(|error| command_rejection(error, user_rejection))?;
                    return self.user_reply(command.user_id, &loaded).await;
                }
                // Someone registered this user id or this email first: the next attempt
                // finds out which and answers accordingly.
                Err(error) if error.is_conflict() => tracing::debug!(%error, "registration raced another"),
                Err(error) => return Err(internal(error)),
            }
        }
        Err(Rejection::new(RejectionKind::Conflict, "the registration kept conflicting with others; try again"))
    }

    #[tracing::instrument(skip_all)]
    pub async fn log_in(self: Arc<Self>, command: LogIn, context: MessageContext) -> Result<Session, Rejection> {
        let Some(user_id) = self.email_owner(&command.email).await? else {
            passwords::spend_one_verification(command.password).await.map_err(internal)?;
            return Err(invalid_credentials());
        };
        let loaded = self.users.load(user_id).await.map_err(|error| command_rejection(error, user_rejection))?;
        let Some(profile) = loaded.state.profile else {
            // A claim is appended with its user, so this cannot happen; answer as for
            // any unknown email.
            tracing::error!(%user_id, "an email claim names a user that does not exist");
            passwords::spend_one_verification(command.password).await.map_err(internal)?;
            return Err(invalid_credentials());
        };
        let matches =
            passwords::verify_password(command.password, profile.password_hash.clone()).await.map_err(internal)?;
        if !matches {
            return Err(invalid_credentials());
        }
        let issued = tokens::issue(user_id, Utc::now());
        self.users
            .execute(user_id, &UserCommand::IssueRefreshToken { token: issued.record }, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, user_rejection))?;
        Ok(Session { user_id, email: profile.email, role: profile.role, refresh_token: issued.token })
    }

    #[tracing::instrument(skip_all)]
    pub async fn refresh_session(
        self: Arc<Self>,
        command: RefreshSession,
        context: MessageContext,
    ) -> Result<Session, Rejection> {
        let presented = tokens::parse(&command.refresh_token).map_err(|error| {
            invalid_refresh_token()
                .with_details(json!({"errors": [{"field": "refresh_token", "message": error.to_string()}]}))
        })?;
        let replacement = tokens::issue(presented.user_id, Utc::now());
        let use_token = UserCommand::UseRefreshToken {
            token_id: presented.token_id,
            token_hash: presented.token_hash,
            now: Utc::now(),
            replacement: replacement.record,
        };
        let executed = self
            .users
            .execute(presented.user_id, &use_token, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, |_refused| invalid_refresh_token()))?;
        if executed.events.iter().any(|event| matches!(event, IdentityEvent::RefreshTokensRevoked { .. })) {
            tracing::warn!(user_id = %presented.user_id, "a used refresh token came back; every session of the user is revoked");
            return Err(invalid_refresh_token());
        }
        let Some(profile) = executed.state.profile else {
            // The decision refuses an unregistered user, so this is unreachable.
            return Err(invalid_refresh_token());
        };
        Ok(Session {
            user_id: presented.user_id,
            email: profile.email,
            role: profile.role,
            refresh_token: replacement.token,
        })
    }

    #[tracing::instrument(skip_all, fields(user_id = %query.user_id))]
    pub async fn get_user(self: Arc<Self>, query: GetUser, _context: MessageContext) -> Result<api::User, Rejection> {
        let loaded = self.users.load(query.user_id).await.map_err(|error| command_rejection(error, user_rejection))?;
        self.user_reply(query.user_id, &loaded).await
    }

    #[tracing::instrument(skip_all, fields(user_id = %command.user_id))]
    pub async fn change_profile(
        self: Arc<Self>,
        command: ChangeProfile,
        context: MessageContext,
    ) -> Result<api::User, Rejection> {
        let change = UserCommand::ChangeProfile { name: command.name, expected_version: command.expected_version };
        self.execute_and_reply(command.user_id, &change, &context).await
    }

    #[tracing::instrument(skip_all, fields(user_id = %command.user_id, address_id = %command.address_id))]
    pub async fn add_address(
        self: Arc<Self>,
        command: AddAddress,
        context: MessageContext,
    ) -> Result<api::Address, Rejection> {
        let add =
            UserCommand::AddAddress { address: api::Address { id: command.address_id, address: command.address } };
        let executed = self
            .users
            .execute(command.user_id, &add, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, user_rejection))?;
        // A repeat answers the address as first stored, whatever this request carried.
        executed.state.address(command.address_id).cloned().ok_or_else(no_such_address)
    }

    #[tracing::instrument(skip_all, fields(user_id = %command.user_id, address_id = %command.address_id))]
    pub async fn remove_address(
        self: Arc<Self>,
        command: RemoveAddress,
        context: MessageContext,
    ) -> Result<api::User, Rejection> {
        let remove = UserCommand::RemoveAddress { address_id: command.address_id };
        self.execute_and_reply(command.user_id, &remove, &context).await
    }

    async fn execute_and_reply(
        &self,
        user_id: Uuid,
        command: &UserCommand,
        context: &MessageContext,
    ) -> Result<api::User, Rejection> {
        let executed = self
            .users
            .execute(user_id, command, context.event_metadata())
            .await
            .map_err(|error| command_rejection(error, user_rejection))?;
        self.user_reply(user_id, &Loaded { state: executed.state, version: executed.version }).await
    }

    /// Who owns `email`, if anyone: the user named by the first event of its claim stream.
    async fn email_owner(&self, email: &Email) -> Result<Option<Uuid>, Rejection> {
        let stream_id = email_claim_stream(email);
        let events = self.store.read_stream(&stream_id, 0).await.map_err(internal)?;
        let Some(first) = events.first() else { return Ok(None) };
        match self.codec.decode(first).map_err(internal)? {
            IdentityEvent::EmailClaimed { user_id, .. } => Ok(Some(user_id)),
            _ => Err(internal(StoredStateError::UnexpectedClaimEvent(stream_id))),
        }
    }

    /// The reply for a loaded user; `NotFound` if it was never registered.
    async fn user_reply(&self, user_id: Uuid, loaded: &Loaded<User>) -> Result<api::User, Rejection> {
        let Some(profile) = &loaded.state.profile else {
            return Err(user_rejection(UserError::NotRegistered));
        };
        Ok(api::User {
            id: profile.user_id,
            email: profile.email.clone(),
            name: profile.name.clone(),
            role: profile.role,
            addresses: loaded.state.addresses.clone(),
            created_at: self.created_at(user_id).await?,
            version: loaded.version,
        })
    }

    async fn created_at(&self, user_id: Uuid) -> Result<DateTime<Utc>, Rejection> {
        if let Some(created_at) = self.cached_created_at().get(&user_id) {
            return Ok(*created_at);
        }
        let stream_id = CommandHandler::<User>::stream_id(user_id);
        // Reads the whole stream, having no way to ask for only the first event; the
        // cache makes it once per user and process.
        let events = self.store.read_stream(&stream_id, 0).await.map_err(internal)?;
        let created_at = events
            .first()
            .map(|first| first.recorded_at)
            .ok_or_else(|| internal(StoredStateError::EmptyUserStream(stream_id)))?;
        let mut cache = self.cached_created_at();
        if cache.len() >= CREATED_AT_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(user_id, created_at);
        Ok(created_at)
    }

    fn cached_created_at(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, DateTime<Utc>>> {
        self.created_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adapts an operation method of [`Identity`] to the router's handler shape.
pub fn operation<O, Fut>(
    identity: &Arc<Identity>,
    method: impl Fn(Arc<Identity>, O, MessageContext) -> Fut + Send + Sync + 'static,
) -> impl Fn(O, MessageContext) -> Fut + Send + Sync + 'static
where
    Fut: Future + Send + 'static,
{
    let identity = identity.clone();
    move |request, context| method(identity.clone(), request, context)
}

/// The rejection for a refused user command.
fn user_rejection(error: UserError) -> Rejection {
    let kind = match error {
        UserError::NotRegistered | UserError::UnknownAddress => RejectionKind::NotFound,
        UserError::UserIdTaken | UserError::TooManyAddresses => RejectionKind::Conflict,
        UserError::VersionMismatch { .. } => RejectionKind::PreconditionFailed,
        UserError::UnknownRefreshToken | UserError::RefreshTokenExpired => return invalid_refresh_token(),
    };
    Rejection::new(kind, error.to_string())
}

fn email_taken() -> Rejection {
    Rejection::new(RejectionKind::Conflict, "an account with this email already exists")
        .with_details(json!({"errors": [{"field": "email", "message": "an account with this email already exists"}]}))
}

/// One answer for an unknown email and a wrong password, so neither is told apart.
fn invalid_credentials() -> Rejection {
    Rejection::new(RejectionKind::Invalid, "invalid email or password")
}

/// One answer for every refused refresh token: unknown, expired, revoked, used or
/// malformed.
fn invalid_refresh_token() -> Rejection {
    Rejection::new(RejectionKind::Invalid, "invalid refresh token")
}

fn no_such_address() -> Rejection {
    user_rejection(UserError::UnknownAddress)
}
