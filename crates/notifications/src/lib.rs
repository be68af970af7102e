//! The notifications: messages to buyers and administrators about what happened to their orders and the stock, kept in the app and sent by email when SMTP is configured.
//!
//! - [`domain`]: the `Notification` aggregate (sent, read, email attempts), pure.
//! - [`templates`]: each kind's subject and body, with `{placeholder}` substitution.
//! - [`reactions`]: the consumers of orders', shipping's, inventory's and identity's
//!   events, which create notifications and record the recipients.
//! - [`view`]: every user's notifications newest first, the recipients, the outbox.
//! - [`email`]: the outbox task, which emails notifications through SMTP with retries.
//! - [`handlers`]: the operations of `contracts::notifications`.
//! - [`testing`]: an SMTP sink that tests send to.

pub mod domain;
pub mod email;
pub mod handlers;
pub mod reactions;
pub mod templates;
pub mod testing;
pub mod view;

use std::sync::Arc;

use contracts::notifications::{ListNotifications, MarkNotificationRead, SERVICE};
use runtime::{LiveView, OperationRouter, RunningService, ServiceContext, StartError};

use crate::email::{Outbox, OutboxPolicy, SmtpSettings};
use crate::handlers::NotificationHandlers;
use crate::view::NotificationsView;

/// The notifications view's name, in logs.
pub const NOTIFICATIONS_VIEW: &str = "notifications.notifications";

/// Starts notifications with the default email policy.
pub async fn start(context: ServiceContext) -> Result<RunningService, StartError> {
    start_with(context, OutboxPolicy::default()).await
}

/// Starts notifications: replays its view, consumes identity's, orders', shipping's and
/// inventory's events, emails through `policy`'s outbox, and serves its operations.
///
/// Those services' events must be published on the bus first (`publish_events`), since
/// the in-process bus refuses a consumer whose source it does not know.
pub async fn start_with(context: ServiceContext, policy: OutboxPolicy) -> Result<RunningService, StartError> {
    let (view, follower) = LiveView::<NotificationsView>::start(NOTIFICATIONS_VIEW, context.store.clone()).await?;
    let smtp = Arc::new(SmtpSettings::follow(context.settings.clone()).await);
    let started =
        reactions::start(&*context.bus, context.store.clone(), context.consumers.clone(), view.clone(), smtp.clone())
            .await;
    let consumers = match started {
        Ok(consumers) => consumers,
        Err(error) => {
            follower.stop().await;
            return Err(error.into());
        }
    };
    let outbox = email::start(Outbox::new(view.clone(), context.store.clone(), smtp, policy));
    let handlers = Arc::new(NotificationHandlers::new(context.store.clone(), view));
    RunningService::new()
        .with_consumers(consumers)
        // The outbox stops before the view it reads.
        .with_task(outbox)
        .with_task(follower)
        .serving(
            router(handlers).with_admin(&context),
            &*context.bus,
            SERVICE,
            "notifications to buyers and administrators, in the app and by email",
        )
        .await
}

fn router(handlers: Arc<NotificationHandlers>) -> OperationRouter {
    let (list, mark) = (handlers.clone(), handlers);
    OperationRouter::new()
        .route::<ListNotifications, _, _>(move |request, context| {
            let handlers = list.clone();
            async move { handlers.list(request, context).await }
        })
        .route::<MarkNotificationRead, _, _>(move |request, context| {
            let handlers = mark.clone();
            async move { handlers.mark_read(request, context).await }
        })
}
