//! The identity operations end to end: the service started on the in-process bus with an
//! in-memory store, called as the gateway calls it.

use std::sync::Arc;
use std::time::Duration;

use contracts::Role;
use contracts::identity::{
    AddAddress, AddressInput, ChangeProfile, GetUser, LogIn, RefreshSession, RegisterUser, RemoveAddress, Session, User,
};
use contracts::values::{Email, Password, PersonName};
use eventshop_core::bus::{CallError, MessageContext, Operation, Rejection, RejectionKind, call};
use eventshop_core::settings::LocalSettings;
use eventshop_core::{EventStore, InMemoryEventStore, StreamId};
use runtime::{InProcessBus, RunningService, ServiceContext};
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(30);

struct Harness {
    bus: Arc<InProcessBus>,
    store: Arc<InMemoryEventStore>,
    service: RunningService,
}

impl Harness {
    async fn start() -> Self {
        let bus = Arc::new(InProcessBus::new());
        let store = Arc::new(InMemoryEventStore::new());
        let context = ServiceContext {
            store: store.clone(),
            bus: bus.clone(),
            consumers: store.clone(),
            settings: Arc::new(LocalSettings::new([])),
        };
        let service = identity::start(context).await.expect("identity starts");
        Harness { bus, store, service }
    }

    async fn call<O: Operation>(&self, operation: O) -> Result<O::Reply, Rejection> {
        match call(&*self.bus, &operation, MessageContext::new_transaction(None), TIMEOUT).await {
            Ok(reply) => Ok(reply),
            Err(CallError::Rejected(rejection)) => Err(rejection),
            Err(other) => panic!("{} did not answer: {other}", O::NAME),
        }
    }

    async fn register(&self, user_id: Uuid, email: &str) -> Result<User, Rejection> {
        self.call(registration(user_id, email)).await
    }

    async fn log_in(&self, email_text: &str, password_text: &str) -> Result<Session, Rejection> {
        self.call(LogIn { email: email(email_text), password: password(password_text) }).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<Session, Rejection> {
        self.call(RefreshSession { refresh_token: refresh_token.to_owned() }).await
    }

    async fn stop(self) {
        self.service.stop().await;
    }
}

fn email(text: &str) -> Email {
    Email::try_from(text.to_owned()).expect("valid email")
}

fn password(text: &str) -> Password {
    Password::try_from(text.to_owned()).expect("valid password")
}

fn name(text: &str) -> PersonName {
    PersonName::try_from(text.to_owned()).expect("valid name")
}

fn registration(user_id: Uuid, email_text: &str) -> RegisterUser {
    RegisterUser {
        user_id,
        email: email(email_text),
        password: password("correct horse"),
        name: name("Ann"),
        role: Role::Customer,
    }
}

fn address_input() -> AddressInput {
    let line = |text: &str| text.to_owned().try_into().expect("valid address line");
    AddressInput {
        name: name("Ann"),
        line1: line("1 Main Street"),
        line2: None,
        city: line("Berlin"),
        postal_code: line("10115"),
        country: "DE".to_owned().try_into().expect("valid country"),
    }
}

#[track_caller]
fn assert_rejected<T: std::fmt::Debug>(result: Result<T, Rejection>, kind: RejectionKind, message: &str) {
    match result {
        Err(rejection) => {
            assert_eq!(rejection.kind, kind, "{rejection}");
            assert_eq!(rejection.message, message);
        }
        Ok(reply) => panic!("expected {kind} \"{message}\", got {reply:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_user_logs_in_and_a_reused_refresh_token_revokes_every_session() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    let user = harness.register(user_id, "Ann@Example.com").await.expect("registers");
    assert_eq!(
        (user.id, user.email.as_str(), user.role, user.version),
        (user_id, "ann@example.com", Role::Customer, 1)
    );
    let first_event = harness.store.read_stream(&StreamId::new("user", user_id), 0).await.expect("reads");
    assert_eq!(user.created_at, first_event[0].recorded_at);
    assert_eq!(harness.call(GetUser { user_id }).await.expect("reads its own write"), user);

    let session = harness.log_in("ann@example.com", "correct horse").await.expect("logs in");
    assert_eq!((session.user_id, session.role), (user_id, Role::Customer));

    let refreshed = harness.refresh(&session.refresh_token).await.expect("refreshes");
    assert_eq!(refreshed.user_id, user_id);
    assert_ne!(refreshed.refresh_token, session.refresh_token, "the token rotates");

    // The first token comes back: someone holds a copy, so the new one stops working too.
    assert_rejected(harness.refresh(&session.refresh_token).await, RejectionKind::Invalid, "invalid refresh token");
    assert_rejected(harness.refresh(&refreshed.refresh_token).await, RejectionKind::Invalid, "invalid refresh token");

    // A new login opens a new session.
    let again = harness.log_in("ann@example.com", "correct horse").await.expect("logs in again");
    harness.refresh(&again.refresh_token).await.expect("the new session works");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_email_has_one_account_whatever_its_case_and_a_retry_gets_the_first_answer() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    let first = harness.register(user_id, "ann@example.com").await.expect("registers");
    let retried = harness.register(user_id, "ann@example.com").await.expect("a retry answers");
    assert_eq!(retried, first);

    assert_rejected(
        harness.register(Uuid::now_v7(), "ANN@example.COM").await,
        RejectionKind::Conflict,
        "an account with this email already exists",
    );
    assert_rejected(
        harness.register(user_id, "bob@example.com").await,
        RejectionKind::Conflict,
        "this user id is already taken by another account",
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let harness = Harness::start().await;
    harness.register(Uuid::now_v7(), "ann@example.com").await.expect("registers");
    assert_rejected(
        harness.log_in("ann@example.com", "battery staple").await,
        RejectionKind::Invalid,
        "invalid email or password",
    );
    assert_rejected(
        harness.log_in("nobody@example.com", "correct horse").await,
        RejectionKind::Invalid,
        "invalid email or password",
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn of_eight_concurrent_registrations_of_one_email_exactly_one_succeeds() {
    let harness = Arc::new(Harness::start().await);
    let attempts = (0..8).map(|_| {
        let harness = harness.clone();
        tokio::spawn(async move { harness.register(Uuid::now_v7(), "ann@example.com").await })
    });
    let results = futures::future::join_all(attempts).await;
    let mut registered = Vec::new();
    for result in results {
        match result.expect("the task finishes") {
            Ok(user) => registered.push(user),
            Err(rejection) => assert_eq!(rejection.kind, RejectionKind::Conflict, "{rejection}"),
        }
    }
    assert_eq!(registered.len(), 1, "{registered:?}");
    let session = harness.log_in("ann@example.com", "correct horse").await.expect("the winner logs in");
    assert_eq!(session.user_id, registered[0].id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_change_checks_the_expected_version_and_records_only_changes() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.register(user_id, "ann@example.com").await.expect("registers");

    let change =
        |name_text: &str, expected_version| ChangeProfile { user_id, name: Some(name(name_text)), expected_version };
    let renamed = harness.call(change("Annie", Some(1))).await.expect("renames");
    assert_eq!((renamed.name.as_str(), renamed.version), ("Annie", 2));
    assert_rejected(
        harness.call(change("Anna", Some(1))).await,
        RejectionKind::PreconditionFailed,
        "the user is at version 2, not 1",
    );
    let unchanged = harness.call(change("Annie", None)).await.expect("nothing to change");
    assert_eq!(unchanged, renamed, "no event, the same user");
    assert_eq!(harness.call(GetUser { user_id }).await.expect("reads"), renamed);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn addresses_are_added_once_per_id_and_removed() {
    let harness = Harness::start().await;
    let user_id = Uuid::now_v7();
    harness.register(user_id, "ann@example.com").await.expect("registers");
    let address_id = Uuid::now_v7();
    let add = AddAddress { user_id, address_id, address: address_input() };
    let added = harness.call(add.clone()).await.expect("adds");
    assert_eq!(harness.call(add).await.expect("a retry answers"), added);
    let user = harness.call(GetUser { user_id }).await.expect("reads");
    assert_eq!((user.addresses, user.version), (vec![added], 2));

    assert_rejected(
        harness.call(RemoveAddress { user_id, address_id: Uuid::now_v7() }).await,
        RejectionKind::NotFound,
        "no such address",
    );
    let user = harness.call(RemoveAddress { user_id, address_id }).await.expect("removes");
    assert!(user.addresses.is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_users_and_malformed_tokens_are_refused() {
    let harness = Harness::start().await;
    let nobody = Uuid::now_v7();
    assert_rejected(harness.call(GetUser { user_id: nobody }).await, RejectionKind::NotFound, "no such user");
    assert_rejected(
        harness.call(ChangeProfile { user_id: nobody, name: Some(name("Bob")), expected_version: None }).await,
        RejectionKind::NotFound,
        "no such user",
    );
    let malformed = harness.refresh("not-a-token").await;
    assert!(malformed.as_ref().is_err_and(|rejection| rejection.details.is_some()), "{malformed:?}");
    assert_rejected(malformed, RejectionKind::Invalid, "invalid refresh token");
    let unknown = format!("{nobody}.{}.{}", Uuid::now_v7(), "A".repeat(43));
    assert_rejected(harness.refresh(&unknown).await, RejectionKind::Invalid, "invalid refresh token");
    harness.stop().await;
}
