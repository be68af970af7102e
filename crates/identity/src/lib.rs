//! The identity service: users, credentials, roles, addresses and refresh tokens (SPEC §1).
//!
//! Each user is one event stream, `user-<id>`, decided by the [`domain::User`] aggregate.
//! An email address is kept unique by a claim stream per address, appended with "no
//! stream" in the same atomic append as the user's first event, so two registrations of
//! one address cannot both succeed whatever instance handles them.
//!
//! Passwords are hashed with argon2id ([`passwords`]); a login opens a session whose
//! refresh token ([`tokens`]) is rotated on every use, and a rotated token that comes back
//! revokes every session of its user. Access tokens are not made here: the gateway signs
//! them from the [`Session`](contracts::identity::Session) this service answers.
//!
//! Every query reads the user's stream, so a query answers the effect of a command the
//! moment that command has answered.

pub mod domain;
mod handlers;
pub mod passwords;
pub mod tokens;

use contracts::identity::{
    AddAddress, ChangeProfile, GetUser, LogIn, RefreshSession, RegisterUser, RemoveAddress, SERVICE,
};
use runtime::{OperationRouter, RunningService, ServiceContext, StartError};
use std::sync::Arc;

pub use handlers::email_claim_stream;

use crate::handlers::{Identity, operation};

/// Serves every operation of `contracts::identity` on the context's bus.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    let identity = Arc::new(Identity::new(context.store.clone()));
    let server = OperationRouter::new()
        .with_admin(&context)
        .route::<RegisterUser, _, _>(operation(&identity, Identity::register_user))
        .route::<LogIn, _, _>(operation(&identity, Identity::log_in))
        .route::<RefreshSession, _, _>(operation(&identity, Identity::refresh_session))
        .route::<GetUser, _, _>(operation(&identity, Identity::get_user))
        .route::<ChangeProfile, _, _>(operation(&identity, Identity::change_profile))
        .route::<AddAddress, _, _>(operation(&identity, Identity::add_address))
        .route::<RemoveAddress, _, _>(operation(&identity, Identity::remove_address))
        .serve(&*context.bus, SERVICE, "users, credentials, roles, addresses and refresh tokens")
        .await?;
    Ok(RunningService::new().with_server(server))
}
